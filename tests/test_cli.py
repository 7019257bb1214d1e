import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHELSEA = str(ROOT / "assets" / "images" / "chelsea.png")
QUICK = {"cw": ["--steps", "10"], "square": ["--n-queries", "100"], "deepfool": ["--steps", "10"]}


@pytest.fixture(scope="module")
def lite0_on_chelsea():
    """What the model itself says of the photo: the top-5 the CLI must report."""
    import torch

    from engine import images, models

    model = models.load("efficientnet-lite0", device="cpu")
    with torch.no_grad():
        p = torch.softmax(model(images.load(CHELSEA, model)), 1)[0]
    top = p.topk(5)
    return {"top5": top.indices.tolist(), "probabilities": top.values.tolist()}


def run_json(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("attack", ["fgsm", "bim", "pgd", "mifgsm", "cw", "deepfool", "square"])
def test_every_attack_on_lite0_and_chelsea(capsys, attack, lite0_on_chelsea):
    record = run_json(
        capsys,
        "attack",
        "--model",
        "efficientnet-lite0",
        "--image",
        CHELSEA,
        "--attack",
        attack,
        "--json",
        *QUICK.get(attack, []),
    )
    row = record["examples"][0]
    assert record["attack"] == attack and record["model"] == "efficientnet-lite0"
    assert row["clean_top5"][0]["label"] in {"Egyptian cat", "tiger cat", "tabby"}
    assert len(row["clean_top5"]) == 5 and len(row["adversarial_top5"]) == 5
    top5 = [(r["index"], r["probability"]) for r in row["clean_top5"]]
    assert top5 == sorted(top5, key=lambda t: -t[1])
    assert [i for i, _ in top5] == lite0_on_chelsea["top5"]
    assert [p for _, p in top5] == pytest.approx(lite0_on_chelsea["probabilities"], abs=1e-4)
    for key in ("success", "l0_pct", "l2", "linf", "ssim", "iterations"):
        assert key in row
    assert record["seconds"] > 0 and record["environment"]["device"] == "cpu"
    if attack in {"fgsm", "bim", "pgd", "mifgsm", "square"}:
        assert row["linf"] <= 0.03 + 1e-6
    if attack == "square":
        assert 1 <= row["queries"] <= 100
    assert row["success"] == (row["adversarial_top5"][0]["index"] != row["label"])


def test_targeted_by_name_and_saved_outputs(capsys, tmp_path):
    record = run_json(
        capsys,
        "attack",
        "--model",
        "efficientnet-lite0",
        "--image",
        "chelsea",
        "--attack",
        "pgd",
        "--eps",
        "0.03",
        "--steps",
        "10",
        "--target",
        "goldfish",
        "--json",
        "--save-adv",
        str(tmp_path / "adv"),
        "--save-delta",
        str(tmp_path / "delta"),
    )
    row = record["examples"][0]
    assert row["target_name"] == "goldfish" and row["success"]
    assert row["adversarial_top5"][0]["label"] == "goldfish"
    adv = np.load(tmp_path / "adv.npy")
    delta = np.load(tmp_path / "delta.npy")
    assert adv.shape == (3, 224, 224) and 0 <= adv.min() and adv.max() <= 1
    assert np.abs(delta).max() <= 0.03 + 1e-6
    assert Image.open(tmp_path / "adv.png").size == (224, 224)
    assert Image.open(tmp_path / "delta.png").size == (224, 224)


def test_models_lists_availability(capsys):
    rows = run_json(capsys, "models", "--json")
    by_name = {r["name"]: r for r in rows}
    assert by_name["efficientnet-lite0"]["available"]
    assert "resnet50" in by_name


@pytest.mark.parametrize(
    "args, message",
    [
        (["attack", "--model", "efficientnet-lite0", "--image", "chelsea", "--attack", "pgd", "--eps", "2"], "'eps'"),
        (
            ["attack", "--model", "efficientnet-lite0", "--image", "chelsea", "--attack", "fgsm", "--steps", "3"],
            "no parameter 'steps'",
        ),
        (["attack", "--model", "nope", "--image", "chelsea", "--attack", "pgd"], "unknown model"),
        (["attack", "--model", "efficientnet-lite0", "--image", "/nonexistent.png", "--attack", "pgd"], "not found"),
        (["attack", "--model", "efficientnet-lite0", "--image", __file__, "--attack", "pgd"], "not a recognised image"),
        (
            ["attack", "--model", "efficientnet-lite0", "--image", "chelsea", "--attack", "pgd", "--target", "unicorn"],
            "target",
        ),
        (["attack", "--model", "efficientnet-lite0", "--image", "chelsea", "--attack", "nope"], "invalid choice"),
        (
            ["attack", "--model", "efficientnet-lite0", "--image", "chelsea", "--attack", "pgd", "--steps", "x"],
            "invalid int",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_unavailable_model_message_says_what_to_download(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert main(["attack", "--model", "resnet50", "--image", "chelsea", "--attack", "fgsm"]) == 2
    err = capsys.readouterr().err
    assert "resnet50-11ad3fa6.pth" in err and str(tmp_path) in err


@pytest.mark.slow
def test_module_entry_point_exit_code():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "attack",
            "--model",
            "efficientnet-lite0",
            "--image",
            "chelsea",
            "--attack",
            "pgd",
            "--eps",
            "-1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "'eps'" in proc.stderr


def test_transfer_sweep_json(capsys):
    report = run_json(
        capsys,
        "transfer",
        "--model",
        "fmnist-lenet-0",
        "--black",
        "fmnist-lenet-1",
        "--attack",
        "all",
        "--sweep",
        "eps",
        "--eps",
        "0",
        "0.2",
        "--n",
        "24",
        "--json",
    )
    rows = report["rows"]
    assert len(rows) == 4 * 2 and {r["method"] for r in rows} == {"aa", "tmifgsm", "tpgd", "itcm"}
    zero = [r for r in rows if r["eps"] == 0]
    assert all(r["error"] == 0 and r["tSuc"] == 0 for r in zero)
    layers = run_json(
        capsys,
        "transfer",
        "--model",
        "fmnist-lenet-0",
        "--black",
        "fmnist-lenet-1",
        "--attack",
        "aa",
        "--sweep",
        "layer",
        "--eps",
        "0.2",
        "--n",
        "16",
        "--json",
    )["rows"]
    assert [r["layer"] for r in layers] == list(range(6))


def test_analysis_subcommands(capsys):
    table = run_json(capsys, "compare-l0", "--model", "fmnist-lenet-0", "--n", "8", "--json")
    assert [r["method"] for r in table] == ["fgsm", "jsma", "deepfool", "maskfgsm"]
    assert all(r["l0_any_pct"] >= r["l0_pct"] - 1e-3 for r in table)  # float32 vs float64 means
    sep = run_json(capsys, "separability", "--model", "fmnist-lenet-0", "--n", "100", "--json")
    assert sep[0]["name"] == "input" and len(sep) == 7
    hard = run_json(
        capsys, "jsma-hardness", "--model", "fmnist-lenet-0", "--classes", "1", "7", "--per-pair", "2", "--json"
    )
    assert {(r["source"], r["target"]) for r in hard} == {(1, 7), (7, 1)}


def test_aa_from_the_cli_picks_a_target_image(capsys):
    record = run_json(
        capsys,
        "attack",
        "--model",
        "fmnist-lenet-0",
        "--image",
        "5",
        "--attack",
        "aa",
        "--layer",
        "4",
        "--target",
        "Bag",
        "--json",
    )
    row = record["examples"][0]
    assert row["target_name"] == "Bag" and row["linf"] <= 0.2 + 1e-6


def test_gradcam_subcommand(capsys, tmp_path):
    record = run_json(
        capsys,
        "gradcam",
        "--model",
        "efficientnet-lite0",
        "--image",
        "coffee",
        "--class",
        "espresso",
        "--out",
        str(tmp_path / "heat"),
        "--json",
    )
    assert record["class_name"] == "espresso" and record["shape"] == [224, 224]
    heat = np.load(tmp_path / "heat.npy")
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0, abs=1e-5)
    sal = run_json(capsys, "gradcam", "--model", "fmnist-lenet-0", "--image", "0", "--method", "saliency", "--json")
    assert sal["layer"] is None and sal["shape"] == [28, 28]
    assert main(["gradcam", "--model", "efficientnet-lite0", "--image", "coffee", "--layer", "99"]) == 2


def test_recognisable_subcommands(capsys):
    small = [
        "--models",
        "fmnist-lenet-0",
        "fmnist-vgg-0",
        "--black",
        "fmnist-vgg-1",
        "--n",
        "4",
        "--copies",
        "2",
        "--steps",
        "3",
    ]
    rows = run_json(capsys, "strength", *small, "--attack", "bim", "deepfool", "--json")
    settings = {(r["attack"], r["setting"]) for r in rows}
    assert settings == {("—", "clean"), ("—", "random ±ε")} | {
        (a, s) for a in ("bim", "deepfool") for s in ("single-model", "multi-model", "noisy multi-model")
    }
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    rows = run_json(capsys, "recognizability", *small, "--json")
    assert {r["setting"] for r in rows} == {"single-model", "multi-model", "noisy multi-model"}
    rows = run_json(capsys, "similarity", *small, "--attack", "bim", "cw", "--json")
    assert len(rows) == 3 and all(r["a"] == "bim" and r["b"] == "cw" for r in rows)
    out = run_json(capsys, "contour", *small, "--sweep-steps", "-1", "0", "1", "--linf-values", "0.1", "0.2", "--json")
    areas = [r["area"] for r in out["mask_sweep"]]
    assert areas == sorted(areas) and len(out["linf_sweep"]) == 4
    rows = run_json(
        capsys,
        "checkerboard",
        "--model",
        "fmnist-lenet-0",
        "--sigma",
        "0.05",
        "0.2",
        "--copies",
        "8",
        "--steps",
        "3",
        "--json",
    )
    assert [r["sigma"] for r in rows] == [0.05, 0.2] and all(r["period"] > 0 for r in rows)
    rows = run_json(capsys, "noise-classes", "--models", "fmnist-lenet-0", "--n", "32", "--json")
    assert rows[0]["model"] == "fmnist-lenet-0" and rows[0]["rank"] == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["strength", "--attack", "bim", "--kappa", "3"], "--kappa is not a parameter of bim"),
        (["checkerboard", "--model", "fmnist-lenet-0", "--copies", "0"], "copies must be"),
        (["checkerboard", "--model", "fmnist-lenet-0", "--sigma", "-1"], "sigma must lie"),
        (["strength", "--attack", "aa"], "invalid choice"),
        (["noise-classes", "--models", "no-such-model"], "no-such-model"),
    ],
)
def test_recognisable_subcommands_reject_bad_input(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_attack_runs_in_bf16_and_records_the_precision():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "attack",
            "--model",
            "fmnist-lenet-0",
            "--image",
            "3",
            "--attack",
            "fgsm",
            "--precision",
            "bf16",
            "--device",
            "cpu",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["precision"] == "bf16" and record["examples"][0]["linf"] <= 0.2 + 1e-6


def test_every_subcommand_explains_itself(capsys):
    from engine.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        assert main([name, "--help"]) == 0, name
        assert "usage: python -m engine " + name in capsys.readouterr().out
