"""Your own data and your own model through the CLI: the same numbers as the built-in path on the same images."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine import images, models
from engine.cli import main
from engine.datasets import fashion_mnist

N = 12


def run_json(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return _timeless(json.loads(out))


def _timeless(value):
    """The numbers without the wall-clock ones."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


@pytest.fixture(scope="module")
def fmnist_folder(tmp_path_factory):
    """The first N Fashion-MNIST test images as PNG files in class sub-folders (the ImageFolder layout)."""
    root = tmp_path_factory.mktemp("fmnist")
    x, y = fashion_mnist.test_split()
    for i in range(N):
        folder = root / fashion_mnist.CLASS_NAMES[int(y[i])].replace("/", "-")  # "T-shirt/top" cannot be a folder name
        folder.mkdir(exist_ok=True)
        Image.fromarray(images.to_uint8(x[i])[..., 0]).save(folder / f"{i:05d}.png")
    return root


@pytest.fixture(scope="module")
def fmnist_csv(tmp_path_factory):
    """The same images in a flat folder with a file,label CSV of class indices, in test-split order."""
    root = tmp_path_factory.mktemp("fmnist-csv")
    x, y = fashion_mnist.test_split()
    rows = ["file,label"]
    for i in range(N):
        Image.fromarray(images.to_uint8(x[i])[..., 0]).save(root / f"{i:05d}.png")
        rows.append(f"{i:05d}.png,{int(y[i])}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_compare_l0_is_the_same_through_data(capsys, fmnist_csv):
    builtin = run_json(capsys, "compare-l0", "--model", "fmnist-lenet-0", "--n", str(N), "--json")
    mine = run_json(
        capsys, "compare-l0", "--model", "fmnist-lenet-0", "--n", str(N), "--data", str(fmnist_csv), "--json"
    )
    assert mine == builtin


def test_separability_is_the_same_through_data(capsys, fmnist_csv, fmnist_folder):
    builtin = run_json(capsys, "separability", "--model", "fmnist-lenet-0", "--n", str(N), "--json")
    assert (
        run_json(
            capsys, "separability", "--model", "fmnist-lenet-0", "--n", str(N), "--data", str(fmnist_csv), "--json"
        )
        == builtin
    )
    # Class folders reorder the images; the per-layer distances are the same up to summation order.
    folders = run_json(
        capsys, "separability", "--model", "fmnist-lenet-0", "--n", str(N), "--data", str(fmnist_folder), "--json"
    )
    for a, b in zip(folders, builtin):
        assert a["layer"] == b["layer"] and a["ratio"] == pytest.approx(b["ratio"], rel=1e-4)


def test_strength_is_the_same_through_data(capsys, fmnist_csv):
    common = [
        "--models",
        "fmnist-lenet-0",
        "--black",
        "fmnist-lenet-1",
        "--n",
        "6",
        "--copies",
        "2",
        "--steps",
        "3",
        "--json",
    ]
    builtin = run_json(capsys, "strength", *common)
    assert run_json(capsys, "strength", *common, "--data", str(fmnist_csv)) == builtin


def test_robustness_and_jsma_table_are_the_same_through_data(capsys, fmnist_csv):
    common = ["--models", "fmnist-lenet-0", "--n", "3", "--json"]
    builtin = run_json(capsys, "robustness", *common)
    assert run_json(capsys, "robustness", *common, "--data", str(fmnist_csv)) == builtin
    table = ["jsma-table", *common[:-1], "--thetas", "1", "--max-distortion", "0.05", "--json"]
    assert run_json(capsys, *table, "--data", str(fmnist_csv)) == run_json(capsys, *table)


def test_targeted_recognizability_is_the_same_through_data(capsys, fmnist_csv):
    common = [
        "--models",
        "fmnist-lenet-0",
        "--black",
        "fmnist-lenet-1",
        "--n",
        "6",
        "--copies",
        "2",
        "--steps",
        "2",
        "--targeted",
        "--json",
    ]
    builtin = run_json(capsys, "recognizability", *common)
    assert "target class share" in builtin[0]
    assert run_json(capsys, "recognizability", *common, "--data", str(fmnist_csv)) == builtin


def test_labels_that_do_not_map_are_named(capsys, tmp_path):
    (tmp_path / "giraffe").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "giraffe" / "a.png")
    assert main(["compare-l0", "--model", "fmnist-lenet-0", "--data", str(tmp_path), "--json"]) == 2
    err = capsys.readouterr().err
    assert "giraffe" in err and "fmnist-lenet-0" in err and err.count("\n") == 1


def test_transfer_on_photos_of_your_own(capsys, tmp_path):
    labels = json.loads((images.GALLERY / "labels.json").read_text())
    for file in ("chelsea.png", "coffee.png", "camera.png"):
        folder = tmp_path / labels[file]["label"]
        folder.mkdir()
        (folder / file).write_bytes((images.GALLERY / file).read_bytes())
    out = run_json(
        capsys,
        "transfer",
        "--model",
        "efficientnet-lite0",
        "--black",
        "efficientnet-lite1",
        "--attack",
        "tpgd",
        "--eps",
        "0.03",
        "--steps",
        "2",
        "--n",
        "3",
        "--data",
        str(tmp_path),
        "--json",
    )
    row = out["rows"][0]
    assert row["images"] == 3 and row["n"] == 3  # both models get all three right


@pytest.fixture(scope="module")
def lenet_torchscript(tmp_path_factory):
    """fmnist-lenet-0's network traced to TorchScript, with a sidecar that puts it in the Fashion-MNIST domain."""
    folder = tmp_path_factory.mktemp("model")
    zoo = models.load("fmnist-lenet-0", device="cpu")
    traced = torch.jit.trace(zoo.net, torch.zeros(1, *zoo.input_size))
    path = folder / "lenet.pt"
    traced.save(str(path))
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "input_size": list(zoo.input_size),
                "mean": [fashion_mnist.MEAN],
                "std": [fashion_mnist.STD],
                "class_names": fashion_mnist.CLASS_NAMES,
                "domain": zoo.domain,
            }
        )
    )
    return path


def test_a_torchscript_model_attacks_like_the_registered_one(capsys, lenet_torchscript):
    args = ["attack", "--image", "3", "--attack", "pgd", "--eps", "0.1", "--steps", "5", "--json"]
    registered = run_json(capsys, *args, "--model", "fmnist-lenet-0")["examples"][0]
    mine = run_json(capsys, *args, "--model", str(lenet_torchscript))["examples"][0]
    assert [r["index"] for r in mine["adversarial_top5"]] == [r["index"] for r in registered["adversarial_top5"]]
    assert mine["linf"] == pytest.approx(registered["linf"], abs=1e-6) and mine["success"] == registered["success"]


def test_a_torchscript_model_has_grad_cam(capsys, lenet_torchscript):
    record = run_json(capsys, "gradcam", "--model", str(lenet_torchscript), "--image", "3", "--json")
    assert record["layer"] and record["predicted"] in fashion_mnist.CLASS_NAMES


def test_an_unknown_model_says_what_a_model_can_be(capsys):
    assert main(["attack", "--model", "no-such-model", "--image", "3", "--attack", "fgsm"]) == 2
    assert "entry point" in capsys.readouterr().err


def test_a_sweep_job_on_your_data_measures_what_it_measures_on_the_same_builtin_images(fmnist_csv):
    from engine import sweep

    def rows(**data):
        grid = sweep.Grid(
            attacks=["fgsm"],
            whites=["fmnist-lenet-0"],
            blacks=["fmnist-lenet-1"],
            eps=[0.1],
            images=N,
            shard_size=N,
            **data,
        )
        (job,) = grid.jobs()
        keep = ("n", "error", "uTR", "white_error", "l2", "linf")
        return [{k: r[k] for k in keep} for r in sweep.run_job(job)]

    assert rows(data=str(fmnist_csv)) == rows()


def test_an_entry_point_with_its_metadata_from_the_command_line(capsys, tmp_path):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"input_size": [3, 32, 32], "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]}))
    record = run_json(
        capsys,
        "gradcam",
        "--model",
        "user_model_factory:make",
        "--model-meta",
        str(meta),
        "--image",
        str(images.GALLERY / "chelsea.png"),
        "--json",
    )
    assert record["model"] == "user_model_factory:make" and record["layer"].startswith("net.features")
