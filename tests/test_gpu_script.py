"""bench/gpu.sh, the one prepared GPU run: it parses, its plan holds the six steps in order within the call's
8 minutes, and it covers every CLI command and every attack, so that a new one cannot be forgotten in the single
call a GPU machine is lent for. peers.py --stream hands over each row as it is measured."""

import subprocess
import sys
from pathlib import Path

from conftest import require

from engine import attacks
from engine.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu.sh"
sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402
import peers  # noqa: E402


def cli_commands() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(sub.choices)


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_plan_runs_the_six_steps_in_order_within_eight_minutes():
    plan = subprocess.run(["bash", str(SCRIPT), "--plan"], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = plan.stdout.splitlines()
    steps = [line for line in lines if " s  " in line]
    order = ["gpu tests", "CLI command", "agreement", "PGD-10", "DeepFool vs Foolbox and adv-lib", "every peer"]
    assert [next(i for i, s in enumerate(steps) if word in s) for word in order] == list(range(6))
    assert sum(int(s.split()[0]) for s in steps) <= 8 * 60  # each step's own limit; BUDGET caps them together too
    assert "--stream" in steps[4] and "--stream" in steps[5] and "--device cuda" in steps[5]
    assert "gpu_check.py cli --device cuda" in steps[1]  # which runs gpu_check.COMMANDS: every command, below


def test_every_cli_command_and_every_attack_has_a_run():
    assert set(gpu_check.COMMANDS) == cli_commands()
    on_cli = {argv[argv.index("--attack") + 1] for argv in gpu_check.COMMANDS["attack"]}
    assert on_cli == set(attacks.ATTACKS)
    assert set(gpu_check.SETTINGS) == set(attacks.ATTACKS)  # the agreement step's small settings
    skipped = [name for name, runs in gpu_check.COMMANDS.items() if isinstance(runs, str)]
    assert skipped == ["download"]  # the only command the offline GPU machine cannot run


def test_peers_stream_each_row_as_it_is_measured():
    from engine import models
    from engine.datasets import fashion_mnist

    torchattacks = require("torchattacks", "bash scripts/test.sh installs it")  # the one peer in the venv: quick
    model = models.load("fmnist-lenet-0", device="cpu")
    x = fashion_mnist.test_split()[0][:4]
    case_list = [c for c in peers.cases(0.1, True, digits=True) if c.attack in ("fgsm", "pgd")]
    seen = []
    rows = peers.measure(
        model, x, case_list, {"torchattacks": torchattacks.__version__}, 1, {}, warm_up=False, on_row=seen.append
    )
    assert len(rows) == 2 and seen == rows  # every row, as measured, in order
    line = peers.table([rows[0]]).splitlines()[2]
    assert line.startswith("| ") and "fmnist-lenet-0" in line
