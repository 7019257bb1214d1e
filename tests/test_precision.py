"""The precision policy (engine.precision): what `auto` picks per device, batch and model size, that it never
changes which images count as fooled, and that results and the CLI say what ran. CUDA appears only as a
device-type string: nothing here touches a GPU."""

import contextlib
import json

import pytest
import torch

from engine import attacks, precision
from engine.cli import main
from engine.report import run_record

SMALL, LARGE = 60_000, 4_700_000  # a Fashion-MNIST LeNet's parameters, Lite0's


@pytest.mark.parametrize(
    "device, batch, parameters, mode",
    [
        ("cpu", 1, SMALL, "fp32"),
        ("cpu", 100_000, LARGE, "fp32"),
        ("mps", 4096, LARGE, "fp32"),
        ("cuda", 1, LARGE, "fp32"),
        ("cuda", 63, LARGE, "fp32"),
        ("cuda", 64, LARGE, "tf32"),
        ("cuda", 255, LARGE, "tf32"),
        ("cuda", 256, LARGE, "bf16"),
        ("cuda", 256, SMALL, "fp32"),
        ("cuda", 1024, SMALL, "tf32"),
        ("cuda", 10_000, SMALL, "bf16"),
    ],
)
def test_auto_picks_by_device_batch_and_model_size(device, batch, parameters, mode):
    assert precision.choose(device, batch, parameters) == mode
    assert precision.resolve("auto", device, batch, parameters) == mode
    for explicit in precision.MODES:  # a mode asked for by name is what runs
        assert precision.resolve(explicit, device, batch, parameters) == explicit


def test_auto_never_picks_fp16_and_grows_with_the_batch():
    order = {"fp32": 0, "tf32": 1, "bf16": 2}
    for device in ("cpu", "cuda", "mps"):
        for parameters in (SMALL, LARGE):
            picks = [precision.choose(device, 2**k, parameters) for k in range(18)]
            assert "fp16" not in picks
            assert [order[p] for p in picks] == sorted(order[p] for p in picks)


@pytest.mark.parametrize(
    "device, batch, parameters, compiled",
    [
        ("cpu", 1, SMALL, False),
        ("cpu", 1, LARGE, False),
        ("cuda", 1, LARGE, True),
        ("cuda", 64, LARGE, True),
        ("cuda", 65, LARGE, False),
        ("cuda", 256, SMALL, True),
        ("cuda", 257, SMALL, False),
    ],
)
def test_compiling_by_default_only_for_small_batches_on_cuda(device, batch, parameters, compiled):
    assert precision.compile_by_default(device, batch, parameters) is compiled
    expected = precision.COMPILE_BACKENDS.get(device, precision.COMPILE_BACKEND_ELSEWHERE) if compiled else ""
    assert precision.compile_backend(None, device, batch, parameters) == expected
    assert precision.compile_backend(False, device, batch, parameters) == ""
    assert precision.compile_backend("inductor", device, batch, parameters) == "inductor"


def test_unknown_precision_and_backend_are_clear_errors(digits):
    with pytest.raises(ValueError, match="precision 'fp8': choose from auto, fp32, tf32, bf16, fp16"):
        precision.check("fp8")
    with pytest.raises(ValueError, match="precision 'half'"):
        digits[0].set_precision("half")
    with pytest.raises(ValueError, match="compile must be"):
        precision.compile_backend("tensorrt", "cpu", 1, SMALL)
    with pytest.raises(ValueError, match="not 'auto'"):
        with precision.running("auto", "cpu"):
            pass


@contextlib.contextmanager
def _tf32_flags(matmul: bool, cudnn: bool):
    """Set both switches to known values and restore them after (they are process-wide)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_tf32_is_set_for_a_cuda_run_and_restored_after():
    flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)  # noqa: E731
    with _tf32_flags(False, True):  # PyTorch's own default: TF32 convolutions, full-precision matmuls
        with precision.running("tf32", "cuda"):
            assert flags() == (True, True)
        assert flags() == (False, True)
        with precision.running("fp32", "cuda"):  # fp32 means no TF32 at all, convolutions included
            assert flags() == (False, False)
        with pytest.raises(RuntimeError), precision.running("tf32", "cuda"):
            raise RuntimeError("an attack that fails mid-run")
        assert flags() == (False, True)
        with precision.running("tf32", "cpu"):  # the CPU has no TF32: nothing to switch
            assert flags() == (False, True)


def test_auto_on_the_cpu_runs_fp32_and_the_record_says_so(digits):
    model, x, y = digits
    assert model.precision == "auto"  # every model starts on the policy
    result = attacks.run("pgd", model, x[:16], y=y[:16], eps=0.1, steps=3)
    assert result.precision == "fp32"
    record = run_record(result, model)
    assert record["precision"] == "fp32" and record["precision_requested"] == "auto"


def test_a_run_the_policy_puts_in_bf16_still_scores_in_fp32(digits, monkeypatch):
    """A CPU row that sends every batch to bf16 stands in for a large GPU batch: the attack's own forwards run
    under autocast, and the clean and final predictions that decide success are exact fp32 ones."""
    model, x, y = digits
    x, y = x[:32], y[:32]
    monkeypatch.setitem(precision.CROSSOVERS, ("cpu", "small"), precision.Crossovers(1, 1, None))
    seen = []
    hook = model.net.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    try:
        result = attacks.run("pgd", model, x, y=y, eps=0.1, steps=3)
    finally:
        hook.remove()
    assert result.precision == "bf16"
    # clean scoring, three attack steps, final scoring: autocast only in between
    assert seen == [torch.float32, torch.bfloat16, torch.bfloat16, torch.bfloat16, torch.float32]
    with torch.no_grad():
        exact = model.set_precision("fp32")(result.x_adv)
        clean = model(x)
    model.set_precision("auto")
    assert torch.equal(result.logits_adv, exact) and torch.equal(result.logits_clean, clean)
    assert torch.equal(result.success, exact.argmax(1) != y)
    # Asked for by name, bf16 is the whole run's arithmetic, its scores included.
    half = attacks.run("pgd", model.set_precision("bf16"), x, y=y, eps=0.1, steps=3)
    model.set_precision("auto")
    assert half.precision == "bf16" and not torch.equal(half.logits_clean, clean)


def test_a_forward_outside_a_run_under_auto_is_fp32(digits):
    model, x, _ = digits
    with torch.no_grad():
        auto = model(x)
        exact = model.set_precision("fp32")(x)
        model.set_precision("auto")
    assert torch.equal(auto, exact)


def test_cli_takes_precision_auto_and_reports_what_ran(capsys):
    code = main(
        ["attack", "--model", "fmnist-lenet-0", "--image", "fmnist:3", "--attack", "fgsm", "--device", "cpu"]
        + ["--precision", "auto", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(out)
    assert record["precision"] == "fp32" and record["precision_requested"] == "auto"


def test_cli_defaults_to_auto_and_rejects_a_bad_precision(capsys):
    args = ["attack", "--model", "fmnist-lenet-0", "--image", "fmnist:3", "--attack", "fgsm", "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision_requested"] == "auto"
    assert main([*args, "--precision", "fp8"]) == 2
    err = capsys.readouterr().err
    assert "--precision: invalid choice: 'fp8'" in err and "'auto'" in err and "'tf32'" in err


def test_a_bank_of_models_runs_in_their_common_precision(digits_pair):
    """A wrapper without a setting of its own (engine.attacks.averaging's bank) takes its models' one."""
    (white, other), _, _ = digits_pair

    class Bank(torch.nn.Module):
        def __init__(self, *members):
            super().__init__()
            self.members = torch.nn.ModuleList(members)

    assert precision.requested(Bank(white, other)) == "auto"
    other.set_precision("bf16")
    try:
        assert precision.requested(Bank(other)) == "bf16"
        assert precision.requested(Bank(white, other)) == "fp32"  # no common one: exact
    finally:
        other.set_precision("auto")
    assert precision.requested(torch.nn.Linear(2, 2)) == "fp32"
