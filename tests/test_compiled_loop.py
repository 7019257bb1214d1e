"""The compiled attack loop (engine.attacks.compiled) on the CPU: the same images as the eager loop, built once per
model, shape and attack and reused. On the CPU it is traced with the eager kernels (engine.precision says why);
the CUDA-graph replay of the same step is timed by bench/gpu.sh."""

import json

import pytest
import torch
from torch._dynamo.utils import counters

from engine import attacks
from engine.attacks import compiled
from engine.cli import main


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


def _same_images(ours, eager):
    assert torch.equal(ours.success, eager.success)
    assert float((ours.x_adv - eager.x_adv).abs().max()) <= 1e-5
    assert torch.equal(ours.iterations, eager.iterations)


def test_compiled_pgd_gives_the_eager_images_and_is_built_once(digits):
    model, x, y = digits
    compiled.clear()
    torch.compiler.reset()  # an earlier test in this process may have traced the same step: trace it afresh
    eager = attacks.run("pgd", model, x, y=y, eps=0.1, steps=10, seed=3)
    builds, graphs = compiled.builds, _graphs()
    ours = attacks.run("pgd", model, x, y=y, eps=0.1, steps=10, seed=3, compile=True)
    assert compiled.builds == builds + 1 and _graphs() == graphs + 1  # really traced, as one graph
    assert not counters["graph_break"]
    assert 0.2 < float(eager.success.float().mean()) < 1.0  # a budget where the fooled set says something
    _same_images(ours, eager)
    # Another ε, seed and start reuse the step: nothing is built or traced again.
    again = attacks.run("pgd", model, x, y=y, eps=0.05, steps=10, seed=4, compile=True)
    assert compiled.builds == builds + 1 and _graphs() == graphs + 1
    _same_images(again, attacks.run("pgd", model, x, y=y, eps=0.05, steps=10, seed=4))
    # Another batch shape is another step.
    attacks.run("pgd", model, x[:8], y=y[:8], eps=0.1, steps=2, compile=True)
    assert compiled.builds == builds + 2


def test_compiled_targeted_mifgsm_gives_the_eager_images(digits):
    """Momentum and the targeted loss's sign are in the step too."""
    model, x, y = digits
    target = (y + 1) % 10
    eager = attacks.run("mifgsm", model, x, y=y, target=target, eps=0.15, steps=10)
    ours = attacks.run("mifgsm", model, x, y=y, target=target, eps=0.15, steps=10, compile=True)
    assert 0.0 < float(eager.success.float().mean())
    _same_images(ours, eager)


def test_a_stopped_compiled_run_resumes_to_the_eager_images(digits):
    model, x, y = digits
    eager = attacks.run("bim", model, x, y=y, eps=0.1, steps=8)
    stopped = attacks.run("bim", model, x, y=y, eps=0.1, steps=8, compile=True, callback=lambda s, t, st: s < 3)
    assert stopped.checkpoint is not None and stopped.checkpoint["compile"] == "aot_eager"
    builds = compiled.builds
    _same_images(attacks.resume(stopped, model), eager)
    assert compiled.builds == builds  # the resumed half reuses the step the first half built


def test_the_cache_holds_its_models_and_drops_the_oldest(digits, monkeypatch):
    model, x, _ = digits
    compiled.clear()
    monkeypatch.setattr(compiled, "CACHE_SIZE", 2)
    options = dict(targeted=False, clip=True, momentum=False, mode="fp32", backend="aot_eager")
    first = compiled.sign_step(model, x, **options)
    assert compiled.sign_step(model, x, **options) is first
    compiled.sign_step(model, x[:4], **options)
    compiled.sign_step(model, x[:2], **options)  # a third entry: the first goes
    assert len(compiled._CACHE) == 2 and all(entry[0] is model for entry in compiled._CACHE.values())
    assert compiled.sign_step(model, x, **options) is not first
    compiled.clear()


def test_a_rowwise_model_keeps_the_eager_loop():
    class Rowwise(torch.nn.Module):
        rowwise = True

    assert not compiled.eligible(Rowwise()) and compiled.eligible(torch.nn.Linear(2, 2))


def test_cli_compile_flag(capsys):
    args = ["attack", "--model", "fmnist-lenet-0", "--image", "fmnist:3", "--attack", "pgd", "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)
    builds = compiled.builds
    assert main([*args, "--compile", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert compiled.builds == builds + 1
    assert ours["examples"][0]["success"] == eager["examples"][0]["success"]
    assert ours["examples"][0]["linf"] == pytest.approx(eager["examples"][0]["linf"], abs=1e-5)
    assert ours["examples"][0]["l2"] == pytest.approx(eager["examples"][0]["l2"], abs=1e-5)
