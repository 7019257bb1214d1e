"""The Python steps of bench/gpu.sh: every CLI command on a device, CPU↔device agreement, the PGD-10 table.

    python bench/gpu_check.py cli --device cuda        # every `python -m engine` command, small settings
    python bench/gpu_check.py agree --device cuda      # every attack: the same images fooled on the CPU and here
    python bench/gpu_check.py table --device cuda      # PGD-10 ms, images/s, bf16 speed-up, vs torchattacks
    python bench/gpu_check.py commands                 # the command names COMMANDS covers (the test's check)

`--dry` shrinks every step (few images, one repetition) so that a CPU run proves the script has no errors.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, timed  # noqa: E402

sys.path.insert(0, str(ROOT))
from engine import attacks, images, models  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402

LENET, LITE = "fmnist-lenet-0", "efficientnet-lite0"
PHOTO = "brown_bear"
# Small, fast settings per attack for the agreement check (as tests/test_resume.py); a new attack runs on its
# defaults until it gets a line here.
SETTINGS = {
    "fgsm": {"eps": 0.1},
    "bim": {"eps": 0.1, "steps": 10},
    "pgd": {"eps": 0.1, "steps": 10, "random_start": False},
    "mifgsm": {"eps": 0.1, "steps": 10},
    "cw": {"c": 0.1, "kappa": 5.0, "lr": 0.1, "steps": 50, "binary_search_steps": 3},
    "cw-linf": {"c": 0.1, "lr": 0.1, "steps": 20, "tau_factor": 0.5},
    "ead": {"c": 0.1, "beta": 0.01, "steps": 20, "binary_search_steps": 3},
    "deepfool": {"steps": 50},
    "square": {"eps": 0.15, "n_queries": 200},
    "jsma": {"max_distortion": 0.3},
    "maskfgsm": {"eps": 0.2, "p_th": 0.2, "steps": 8, "tau": 60},
    "aa": {"eps": 0.3, "layer": 2},
    "fab": {"eps": 0.15, "steps": 10, "restarts": 2},
    "autoattack": {"eps": 0.15, "steps": 10, "n_target_classes": 2, "n_queries": 50},
    "apgd": {"eps": 0.1, "steps": 10, "restarts": 1, "loss": "dlr"},
    "universal": {"eps": 0.3, "batch": 16, "max_iter": 2, "steps": 10, "target_rate": 1.0},
    "hopskipjump": {"n_queries": 400},
    "boundary": {"n_queries": 200},
}


def _flags(name: str) -> list[str]:
    """SETTINGS[name] as `python -m engine attack` flags: the CLI runs the same small budgets."""
    out = []
    for key, value in SETTINGS.get(name, {}).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, str(value)]
    return out


# One small run of every subcommand; "{out}" is a scratch folder. `None`: not run here, with the reason.
# tests/test_gpu_script.py fails when `python -m engine --help` lists a command missing from this table.
COMMANDS: dict[str, list[list[str]] | str] = {
    "models": [["--json"]],
    "attacks": [["--json"]],
    "attack": [
        *[["--model", LENET, "--image", "fmnist:0", "--attack", name, *_flags(name)] for name in attacks.ATTACKS],
        ["--model", LITE, "--image", PHOTO, "--attack", "pgd", "--steps", "10"],
        ["--model", LITE, "--image", PHOTO, "--attack", "deepfool"],
    ],
    "robust-accuracy": [["--models", LENET, "--n", "64", "--steps", "5"]],
    "transfer": [["--model", LENET, "--black", "fmnist-mlp-0", "--n", "32", "--steps", "5"]],
    "compare-l0": [["--model", LENET, "--n", "8"]],
    "separability": [["--model", LENET, "--n", "64"]],
    "jsma-hardness": [["--model", LENET, "--classes", "0", "1", "--per-pair", "2"]],
    "jsma-table": [["--models", LENET, "--n", "4"]],
    "robustness": [["--models", LENET, "--n", "4"]],
    "gradcam": [["--model", LITE, "--image", PHOTO]],
    "faithfulness": [["--model", LENET, "--n", "4", "--steps", "8"]],
    "strength": [["--models", LENET, "--black", "fmnist-mlp-0", "--attack", "pgd", "--n", "16", "--copies", "2"]],
    "recognizability": [["--models", LENET, "--black", "fmnist-mlp-0", "--attack", "fgsm", "--n", "16"]],
    "similarity": [["--models", LENET, "--attack", "fgsm", "pgd", "--n", "16"]],
    "contour": [["--models", LENET, "--attack", "fgsm", "--n", "8"]],
    "checkerboard": [["--model", LENET, "--image", "fmnist:0", "--copies", "4"]],
    "noise-classes": [["--models", LENET, "--n", "64"]],
    "quiz": [["--models", LENET, "--questions", "4", "--out", "{out}/quiz"]],
    "patch-distance": [["--model", LENET, "--n", "4", "--directions", "2"]],
    "sweep": [
        ["--models", LENET, "--black", "fmnist-mlp-0", "--attack", "fgsm", "pgd", "--n", "32", "--shard-size", "8"]
        + ["--steps", "5", "--out", "{out}/sweep.csv"]
    ],
    "universal": [["--model", LENET, "--n", "32", "--held-out", "32", "--max-iter", "1"]],
    "layer-predictor": [["--model", LENET, "--n", "32", "--steps", "3", "--layer", "0", "3", "--bank-per-class", "10"]],
    "mask-tradeoff": [["--model", LENET, "--n", "16", "--p-th", "0", "0.5"]],
    "report": [["--model", LENET, "--quick", "--out", "{out}/report.html"]],
    "classroom": [["--json"]],
    "export-fmnist": [["--index", "0", "--out", "{out}/fmnist0.png"]],
    "download": "needs the network, which the GPU machine lacks",
}
DRY_COMMANDS = ("models", "attack", "export-fmnist")  # --dry: one run each, enough to check the step works
NO_DEVICE = {"models", "attacks", "export-fmnist", "classroom"}  # commands without --device
# Images whose success may differ between devices: float sums in another order flip an image that ends on the
# decision boundary (the boundary attacks stop there by design). More than this is a disagreement.
AGREE_TOLERANCE = 0.05


def say(text: str = "") -> None:
    print(text, flush=True)  # streamed: gpu.sh tees it, a killed step keeps what it printed


def cmd_cli(args) -> int:
    """Every command, four at a time (one GPU, many cores: most of a command's time is Python start-up)."""
    runs = []
    with tempfile.TemporaryDirectory() as out:
        for name, argvs in COMMANDS.items():
            if isinstance(argvs, str):
                say(f"SKIP  {name}: {argvs}")
                continue
            if args.dry and name not in DRY_COMMANDS:
                continue
            for argv in argvs[:1] if args.dry else argvs:
                full = [a.format(out=out) for a in argv] + ([] if name in NO_DEVICE else ["--device", args.device])
                runs.append((name, full))

        def one(item):
            name, argv = item
            started = time.perf_counter()
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "engine", name, *argv],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=args.timeout,
                )
                code, err = done.returncode, (done.stderr.strip().splitlines() or [""])[-1]
            except subprocess.TimeoutExpired:
                code, err = "timeout", f"over {args.timeout} s"
            return name, argv, code, err, time.perf_counter() - started

        failed = 0
        with ThreadPoolExecutor(args.parallel) as pool:  # printed as they finish: a step cut short keeps them
            for future in as_completed([pool.submit(one, run) for run in runs]):
                name, argv, code, err, seconds = future.result()
                ok = code == 0
                failed += not ok
                shown = " ".join(a if "/" not in a else Path(a).name for a in argv)
                why = "" if ok else f"  [{code}] {err}"
                say(f"{'ok  ' if ok else 'FAIL'}  {seconds:5.1f} s  {name} {shown}{why}")
    say(f"cli: {len(runs) - failed} of {len(runs)} commands ran on {args.device}")
    return 1 if failed else 0


def _fmnist(n: int):
    model = models.load(LENET, device="cpu")
    x, y = fashion_mnist.evaluation_slice(2 * n)
    with torch.no_grad():
        right = model(x).argmax(1) == y
    return x[right][:n], y[right][:n]


def _attack_inputs(name: str, x, y) -> dict:
    spec = attacks.get(name)
    extra = {"y": y, "seed": 0, **SETTINGS.get(name, {})}
    if spec.needs_target_images:
        extra["target_images"] = x.roll(1, 0)
    elif not spec.untargeted:
        extra["target"] = (y + 1) % 10
    return extra


def _moved(extra: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in extra.items()}


def cmd_agree(args) -> int:
    """Each attack on the CPU and on the device from the same images and seed: which images each fools."""
    n = 8 if args.dry else 64
    x, y = _fmnist(n)
    cpu, dev = models.load(LENET, device="cpu"), models.load(LENET, device=args.device)
    names = list(attacks.ATTACKS)[:3] if args.dry else list(attacks.ATTACKS)
    say(f"agreement, {LENET}, {x.shape[0]} images: success CPU / {args.device}, images fooled differently")
    say(f"tolerance: at most {AGREE_TOLERANCE:.0%} of the images (boundary ties under another summation order)")
    bad = 0
    for name in names:
        extra = _attack_inputs(name, x, y)
        try:
            started = time.perf_counter()
            a = attacks.run(name, cpu, x, **extra).success.cpu()
            cpu_s = time.perf_counter() - started
            started = time.perf_counter()
            b = attacks.run(name, dev, x.to(dev.device), **_moved(extra, dev.device)).success.cpu()
            dev_s = time.perf_counter() - started
        except Exception as err:  # noqa: BLE001 - one attack's failure is reported, the others still run
            bad += 1
            say(f"ERROR {name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            continue
        differ = int((a != b).sum())
        ok = differ <= AGREE_TOLERANCE * x.shape[0]
        bad += not ok
        say(
            f"{'ok  ' if ok else 'DIFF'}  {name:12s} {a.float().mean():6.1%} / {b.float().mean():6.1%}  "
            f"differ on {differ:2d}  ({cpu_s:.2f} s CPU, {dev_s:.2f} s {args.device})"
        )
    return 1 if bad else 0


def _pgd10(model, x, y, eps):
    return attacks.run(
        "pgd", model, x, y=y, score=False, eps=eps, steps=10, alpha=2.5 * eps / 10, random_start=False
    ).x_adv


def _fwd_bwd(model, x, y):
    x = x.clone().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(x), y), x)


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: lazy init, autotuning, allocator growth
    return 1000 * statistics.median(timed(fn)[0] for _ in range(repeats))


def _batch(name: str, model, n: int):
    if name == LENET:
        x = fashion_mnist.test_split()[0][:n]
    else:
        photos = torch.cat([images.load(p, model) for p in list(images.gallery().values())[:n]])
        x = photos.repeat((n + len(photos) - 1) // len(photos), 1, 1, 1)[:n]
    x = x.to(model.device)
    with torch.no_grad():
        return x, model(x).argmax(1)


def cmd_table(args) -> int:
    """The issue's table: fwd+bwd, PGD-10 (ours), torchattacks' PGD-10, images/s, bf16 speed-up and whether bf16
    fools the same images as fp32."""
    import peers

    peers.import_peers()
    sizes = {LENET: [256, 10000], LITE: [1, 8, 64, 256]}
    if args.dry:
        sizes = {LENET: [8], LITE: [1]}
    repeats = 1 if args.dry else args.repeats
    say(f"PGD-10 on {args.device} ({_device_name(args.device)}), torch {torch.__version__}, median of {repeats}")
    say("| model, batch | fwd+bwd | PGD-10 | vs torchattacks | img/s | bf16 speed-up | bf16 fools the same |")
    say("|---|---|---|---|---|---|---|")
    for name, batches in sizes.items():
        model = models.load(name, device=args.device)
        eps = 8 / 255 if name == LITE else 0.1
        for n in batches:
            x, y = _batch(name, model, n)
            params = {"eps": eps, "steps": 10, "alpha": 2.5 * eps / 10, "random_start": False}
            theirs = peers.make("torchattacks", "pgd", model, params)
            fb = _median_ms(lambda: _fwd_bwd(model, x, y), repeats)
            ours = _median_ms(lambda: _pgd10(model, x, y, eps), repeats)
            ta = _median_ms(lambda: theirs(x, y), repeats) if theirs is not None else None
            adv = _pgd10(model, x, y, eps)
            with torch.no_grad():
                fp32_hit = (model(adv).argmax(1) != y).cpu()
            model.set_precision("bf16")
            try:
                low = _median_ms(lambda: _pgd10(model, x, y, eps), repeats)
                adv = _pgd10(model, x, y, eps)
            finally:
                model.set_precision("fp32")
            with torch.no_grad():
                same = int(((model(adv).argmax(1) != y).cpu() == fp32_hit).sum())
            ratio = "—" if ta is None else f"{ours / ta:.2f}"
            say(
                f"| {'LeNet' if name == LENET else 'Lite0'} {n:,} | {fb:.2f} ms | {ours:.2f} ms | {ratio} | "
                f"{n / ours * 1000:,.0f} | {ours / low:.2f} | {same} of {n} |"
            )
    return 0


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return "CPU"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("cli", "agree", "table", "commands"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--dry", action="store_true", help="tiny settings: check the steps run, measure nothing")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--parallel", type=int, default=4, help="CLI commands at a time")
    p.add_argument("--timeout", type=int, default=90, help="seconds per CLI command")
    args = p.parse_args(argv)
    if args.step == "commands":
        print(" ".join(COMMANDS))
        return 0
    return {"cli": cmd_cli, "agree": cmd_agree, "table": cmd_table}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
