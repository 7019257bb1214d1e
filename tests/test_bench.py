"""The bench scripts run (quick mode): they measure, tests never assert times."""

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import require

pytestmark = pytest.mark.slow  # whole scripts, in their quick mode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import attack_times  # noqa: E402


def test_attack_times_quick(capsys):
    assert attack_times.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [r["attack"] for r in report["rows"]]
    assert names == ["fgsm", "bim", "pgd", "mifgsm", "cw", "deepfool", "square", "forward+backward"]
    rows = {r["attack"]: r for r in report["rows"]}
    unit = rows["forward+backward"]["median_s"]
    for _name, row in rows.items():
        # The headline figure: each attack's time in units of one forward+backward of the same batch.
        assert row["in_forward_backward_units"] == pytest.approx(row["median_s"] / unit, abs=0.051 + 1e-3 / unit)
    assert rows["fgsm"]["iterations"] == 1.0  # the timed run is the attack asked for: one step
    assert all(rows[n]["iterations"] == rows[n]["params"]["steps"] for n in ("bim", "pgd", "mifgsm"))


def test_inference_rewrites_quick(capsys):
    import inference_rewrites

    assert inference_rewrites.main(["--quick", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == inference_rewrites.QUICK
    for r in rows:
        assert r["folded_batch_norms"] > 0 and r["channels_last"]  # both networks have conv → batch norm
        assert r["max_logit_difference"] <= 1e-4 * r["logit_scale"]  # the same function
        assert r["images_fooled_differently"] == 0
        assert r["fwd+bwd"]["ratio"]["median"] > 0


def test_transfer_sweeps_quick(tmp_path):
    import transfer_sweeps

    out = tmp_path / "sweeps"
    assert transfer_sweeps.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    pair = report["pairs"][0]
    assert {r["method"] for r in pair["eps_sweep"]} == {"aa", "tmifgsm", "tpgd", "itcm"}
    assert all(r["n"] <= 20 for r in pair["eps_sweep"] + pair["layer_sweep"])
    assert "| aa |" in out.with_suffix(".md").read_text()


def test_l0_ssim_table_quick(capsys):
    import l0_ssim_table

    assert l0_ssim_table.main(["--quick"]) == 0
    text = capsys.readouterr().out
    for method in ("fgsm", "jsma", "deepfool", "maskfgsm"):
        assert f"| {method} |" in text


def test_recognisable_experiment_quick(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
    import recognisable_perturbations

    assert recognisable_perturbations.main(["--domain", "fashion-mnist", "--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "recognisable_fashion-mnist_quick.json").read_text())
    settings = {(r["attack"], r["setting"]) for r in report["strength"]}
    assert ("bim", "noisy multi-model") in settings and ("—", "random ±ε") in settings
    assert [r["sigma"] for r in report["checkerboard"]["rows"]] == [0.05, 0.1]
    text = (tmp_path / "recognisable_fashion-mnist_quick.md").read_text()
    assert "| bim |" in text and "Dilation/erosion sweep" in text
    assert (tmp_path / "recognisable_fashion-mnist_quick_bim.png").stat().st_size > 0


def test_app_latency_quick(capsys):
    import app_latency

    assert app_latency.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["first_render_warm"]) == {"explorer", "transfer", "features", "anatomy", "jsma"}
    row = report["attacks"][0]
    assert row["model"] == "fmnist-lenet-0" and row["click_to_result"]["n"] == 1
    assert report["peak_rss_mb_all_offline_models"] > 0


@pytest.mark.oracle
def test_reference_overhead_quick(capsys):
    require("torchattacks", "bash scripts/test.sh installs torchattacks==3.5.1 --no-deps")
    import reference_overhead

    assert reference_overhead.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["attack"]: r for r in report[0]["rows"]}
    assert set(rows) == {"fgsm", "bim", "aa", "deepfool"}
    assert rows["bim"]["over_floor"] is not None and rows["aa"]["over_floor"] is not None
    assert rows["deepfool"]["images_for_success"] == 2 and rows["aa"]["theirs"] is None
    for name in ("fgsm", "bim"):  # the sign attacks match torchattacks image for image: so do their rates
        assert rows[name]["ours_success"] == rows[name]["theirs_success"], name
    for name, r in rows.items():
        if r["theirs"] is not None:
            assert r["ours_over_theirs"] == pytest.approx(r["ours"]["median_s"] / r["theirs"]["median_s"]), name


def test_batching_quick(capsys):
    import batching

    assert batching.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    case = report["averaging"][0]
    assert case["m"] == 2 and case["n"] == 4 and case["max_abs_difference"] < 1e-5  # the same δ either way
    assert report["deepfool"]["all_classes"] == 30 and report["deepfool"]["top10_s"] > 0
    many = report["many_images"]
    assert many["images"] == 8 and many["max_abs_difference"] < 1e-5  # one batch or one call per image: same images
    for case in report["many_eps"]:  # one gradient for every ε gives each ε's own run
        assert case["eps_count"] == 3 and case["max_abs_difference"] < 1e-3


def test_sweep_scaling_quick(capsys):
    import sweep_scaling

    assert sweep_scaling.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["jobs"] == 4
    assert all(r["same_metrics_as_serial"] for r in report["rows"])  # workers change nothing but the time


@pytest.mark.oracle
def test_profile_cw_runs(capsys):
    require("torchattacks", "bash scripts/test.sh installs torchattacks==3.5.1 --no-deps")
    import profile_cw

    assert profile_cw.main(["--model", "fmnist-lenet-0", "--steps", "2", "--lines", "3"]) == 0
    text = capsys.readouterr().out
    assert "== ours:" in text and "== torchattacks:" in text


def test_browser_first_result_quick(server):
    """The script times a page's default to its result in a real browser, a plain link and a button alike (on the
    suite's app server: every page's default is the browser tests' own business). Its own process: Playwright's
    sync API runs one browser driver per thread, and the suite's may be open already."""
    import shutil
    import subprocess

    if shutil.which("chromium") is None:
        pytest.skip("needs Chromium: apt-get install chromium")
    only = ["--only", "explorer", "jsma", "explorer, jsma"]
    script = Path(__file__).resolve().parent.parent / "bench" / "browser_first_result.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", "--url", server, *only],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [r["page"] for r in report["rows"]] == ["explorer", "jsma", "explorer, jsma"]
    assert all(r["n"] == 1 and 0 < r["median_s"] < float("inf") for r in report["rows"])


def test_concurrency_quick(capsys):
    """k jobs at once, with and without the compute queue, in threads and in processes: every job finishes."""
    import concurrency

    assert concurrency.main(["--quick", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.split("\n[", 1)[1].join(["[", ""]))
    assert {(r["where"], r["jobs"], r["mode"]) for r in rows} == {
        (w, k, m) for w in ("threads", "processes") for k in (1, 2) for m in ("queue", "no queue")
    }
    assert all(r["makespan_s"] >= r["mean_job_s"] > 0 for r in rows)


@pytest.mark.oracle
def test_peers_quick(capsys):
    """Every peer library that is installed runs each attack it has on the same batch; where the algorithms
    are the same the success agrees (image for image for the sign attacks), and only then is a ratio claimed."""
    import peers

    if not peers.PEERS_DIR.is_dir():
        pytest.skip("peer libraries not installed: bash bench/install_peers.sh")
    assert peers.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not report["missing"], report["missing"]  # installed, so every peer imports
    pairs = {(r["peer"], r["attack"], r["model"]): r for r in report["rows"]}
    search = "cw, 2 search steps"
    apgd, universal = ("apgd", "apgd, dlr"), ("universal, batch 1", "universal, batch 32")
    has = {  # what each library has, read in its source: nothing missing, nothing made up
        "torchattacks": {"fgsm", "pgd", "mifgsm", "cw", "deepfool", "square", "jsma", *apgd, "fab", "autoattack"}
        | {"ead"},
        "Foolbox": {"fgsm", "pgd", "mifgsm", "cw", search, "deepfool", "ead", "hopskipjump", "boundary"},
        "ART": {"fgsm", "pgd", "mifgsm", "cw", search, "deepfool", "square", "jsma", "ead", *universal, *apgd}
        | {"cw-linf", "hopskipjump", "boundary"},
        "adv-lib": {"pgd", "cw", search, "deepfool", *apgd, "fab", "cw-linf"},
        "advertorch": {"fgsm", "pgd", "mifgsm", "cw", search, "jsma", "ead"},
    }
    expected = {(peer, attack, "fmnist-lenet-0") for peer, names in has.items() for attack in names}
    expected |= {(peer, "fgsm", "efficientnet-lite0") for peer in has if peer != "adv-lib"}
    assert set(pairs) == expected
    known = {(peers.LIBRARIES[lib], method) for lib, method in peers.DIFFERENT}
    for (peer, attack, model), r in pairs.items():
        if (peer, r["method"]) not in known:  # the same algorithm: the same success
            assert r["agree"], (peer, attack, model, r["agreement"])
        if r["agree"]:
            per_rep = r["ours"]["median_s"] / r["theirs"]["median_s"]  # one repetition: its ratio is the ratio
            assert r["ratio"]["median"] == pytest.approx(per_rep)
        else:
            assert r["ratio"] is None  # no claim where the success disagrees
    for attack in ("fgsm", "pgd", "mifgsm"):  # deterministic: the same images fall, so the same rate
        rates = {
            r["theirs_success"] for r in report["rows"] if r["attack"] == attack and r["model"] == "fmnist-lenet-0"
        }
        assert len(rates) == 1 and 0 < rates.pop() < 1, attack  # and some images resist: the check has teeth


@pytest.mark.oracle
def test_peers_on_the_network_as_given_fool_the_same_images(capsys):
    """With the peers on the model built without the engine's rewrites (folded batch norms, channels-last),
    the sign attacks still fool the same images: the rewrites change the cost, not the function."""
    import peers

    if not peers.PEERS_DIR.is_dir():
        pytest.skip("peer libraries not installed: bash bench/install_peers.sh")
    assert (
        peers.main(
            [
                "--quick",
                "--json",
                "--peer-network",
                "as-given",
                "--models",
                "efficientnet-lite0",
                "--attacks",
                "fgsm",
                "--peers",
                "torchattacks",
                "Foolbox",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["peer_network"] == "as-given"
    assert {r["peer"] for r in report["rows"]} == {"torchattacks", "Foolbox"}
    assert all(r["agree"] and r["ours_success"] == r["theirs_success"] for r in report["rows"]), report["rows"]


@pytest.mark.oracle
def test_deepfool_matches_foolbox_image_for_image():
    """The same steps to the same boundary: each image's perturbation is Foolbox's, not only the rate. (The
    reference code's 1e-4 overshoot is a distance; added to |f| instead, images crossed iterations later.)"""
    import peers

    if not peers.PEERS_DIR.is_dir():
        pytest.skip("peer libraries not installed: bash bench/install_peers.sh")
    peers.import_peers()
    from engine import attacks, models
    from engine.datasets import fashion_mnist

    model = models.load("fmnist-lenet-0")
    x = fashion_mnist.test_view()[0][:64]
    with torch.no_grad():
        y = model(x).argmax(1)
    params = {"steps": 50, "overshoot": 0.02, "num_classes": 10}
    ours = attacks.run("deepfool", model, x, y=y, **params)
    theirs = peers.make("foolbox", "deepfool", model, params)(x, y)
    assert bool(ours.success.all())
    size_ours, size_theirs = ((a - x).flatten(1).norm(dim=1) for a in (ours.x_adv, theirs))
    # Where Foolbox stops within rounding of the boundary, ours takes one step more (margins.robust): those
    # images are a little further and robustly across; every other one is Foolbox's. Measured: 63 of 64 images
    # (a 2 % overshoot of a small last step leaves little margin), median L2 1.014× Foolbox's.
    from engine.attacks.margins import robust

    with torch.no_grad():
        same = robust(model(theirs), y, False)
        assert bool(robust(model(ours.x_adv), y, False).all())
    assert torch.allclose(size_ours[same], size_theirs[same], rtol=1e-3), (size_ours - size_theirs)[same].abs().max()
    assert bool((size_ours[~same] >= size_theirs[~same]).all())
    ratio = float(size_ours.median() / size_theirs.median())
    print(f"DeepFool: {int((~same).sum())} of {len(y)} images one step further; median L2 {ratio:.4f}× Foolbox's")
    assert ratio <= 1.02


@pytest.mark.oracle
def test_check_pgd_floor_quick(capsys):
    """The bare loop, ours and torchattacks give identical images (so their times compare like for like)."""
    import check_pgd_floor
    import peers

    if not peers.PEERS_DIR.is_dir():
        pytest.skip("peer libraries not installed: bash bench/install_peers.sh")
    assert check_pgd_floor.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identical_images"] and set(report["times"]) == {"bare loop", "ours", "torchattacks"}
