"""Every multi-image command of the CLI on a researcher's own model (its own domain, "shapes") with --data:
the model files and the labelled folder are what a user brings (tests/own_world.py)."""

import json
import zipfile

import own_world
import pytest
from conftest import cli_json

pytestmark = pytest.mark.slow  # a dozen commands, seconds each


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    for which in ("white", "black"):
        (root / f"{which}.pt2").write_bytes(own_world.export_bytes(which))
        (root / f"{which}.json").write_text(json.dumps(own_world.META))  # the sidecar beside each model
    with zipfile.ZipFile(own_world.FIXTURE / "images.zip") as z:
        z.extractall(root / "data")
    return {
        "W": str(root / "white.pt2"),
        "B": str(root / "black.pt2"),
        "D": str(root / "data"),
        "IMG": str(root / "data" / "red square" / "000.png"),
        "out": root,
    }


COMMANDS = {
    "transfer": "transfer --data D --model W --black B --attack aa tpgd --n 10 --steps 3",
    "compare-l0": "compare-l0 --data D --model W --n 10",
    "separability": "separability --data D --model W --n 20",
    "jsma-hardness": "jsma-hardness --data D --model W --classes 0 1 2 --per-pair 1",
    "jsma-table": "jsma-table --data D --models W --n 3",
    "robustness": "robustness --data D --models W --n 3",
    "strength": "strength --data D --models W --black B --attack fgsm --n 8 --copies 2",
    "recognizability": "recognizability --data D --models W --black B --attack fgsm --n 8 --copies 2",
    "similarity": "similarity --data D --models W --black B --attack fgsm bim --n 8 --copies 2",
    "contour": "contour --data D --models W --black B --attack fgsm --n 8 --copies 2",
    "quiz": "quiz --data D --model W --models W --questions 3 --black B",
    "patch-distance": "patch-distance --data D --model W --n 4",
    "robust-accuracy": "robust-accuracy --data D --models W B --n 16 --steps 3",
    "sweep": "sweep --models W --black B --attack pgd --data D --n 8 --out OUT --overwrite",
}


def _argv(template: str, world: dict) -> list[str]:
    names = {**world, "OUT": str(world["out"] / "sweep.csv")}
    return [names.get(token, token) for token in template.split()]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_multi_image_command_runs_on_an_own_model_with_its_data(capsys, world, command):
    out = cli_json(capsys, *_argv(COMMANDS[command], world), "--json")
    rows = out.get("rows", out.get("summary", out.get("sheet", out))) if isinstance(out, dict) else out
    assert rows, out  # something was measured, on the user's images
    text = json.dumps(out)
    assert "class 0" not in text  # the user's class names, never placeholders


def test_the_data_is_the_domains_images(capsys, world):
    out = cli_json(
        capsys,
        "transfer",
        "--data",
        world["D"],
        "--model",
        world["W"],
        "--black",
        world["B"],
        "--attack",
        "aa",
        "--n",
        "10",
        "--steps",
        "3",
        "--json",
    )
    assert out["bank"] >= 30  # AA's target-image bank: the user's images the model gets right (36 of 40)
    assert all(r["images"] == 10 for r in out["rows"])


def test_without_data_a_command_says_what_to_give(capsys, world):
    from engine.cli import main

    assert main(["quiz", "--model", world["W"], "--questions", "3"]) != 0
    err = capsys.readouterr().err
    assert "no labelled images of its 10 classes" in err and "--data DIR" in err and "Traceback" not in err


def test_single_image_commands_take_the_users_image_file(capsys, world):
    out = cli_json(capsys, "attack", "--model", world["W"], "--image", world["IMG"], "--attack", "pgd", "--json")
    assert out["params"]["eps"] == pytest.approx(0.03)  # the domain's budget, derived from 3×32×32 input
    cam = cli_json(capsys, "gradcam", "--model", world["W"], "--image", world["IMG"], "--json")
    assert cam["class_name"] in own_world.META["class_names"]
    board = cli_json(capsys, "checkerboard", "--model", world["W"], "--image", world["IMG"], "--copies", "4", "--json")
    assert board
    noise = cli_json(capsys, "noise-classes", "--models", world["W"], world["B"], "--n", "32", "--json")
    assert {r["model"] for r in noise} == {"white", "black"}
