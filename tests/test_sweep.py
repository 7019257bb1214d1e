"""engine.sweep: grid expansion, executors (serial, local processes, a local Ray
instance of 2 workers), retries of killed and failing jobs, the tidy file, resume, the CLI and
the app's "Sweep results" page. Tiny grids on the Fashion-MNIST zoo: a few images, few steps.
"""

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import require
from streamlit.testing.v1 import AppTest

from engine import sweep
from engine.cli import main
from engine.sweep import cache, runner

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "main.py")
WHITE, BLACK = "fmnist-lenet-0", "fmnist-mlp-0"
GRID = sweep.Grid(
    attacks=["fgsm", "tpgd", "aa"], whites=[WHITE], blacks=[BLACK], eps=[0.15], images=8, shard_size=4, steps=2
)
VOLATILE = ["seconds", "worker", "loads", "attempt"]  # where and how often, not what was measured
MARKERS = "SWEEP_TEST_MARKERS"  # folder the chaos task leaves its "already died once" markers in


def chaos(job: sweep.Job, attempt: int) -> list[dict]:
    """run_job, except that fgsm's shard 0 kills its worker process the first time it runs and
    tpgd's shard 1 always raises. Module-level so worker processes can import it."""
    if job.attack == "fgsm" and job.shard == 0:
        marker = Path(os.environ[MARKERS]) / job.key
        if not marker.exists():
            marker.touch()
            os._exit(3)  # no exception, no cleanup: what an OOM kill or a lost node looks like
    if job.attack == "tpgd" and job.shard == 1:
        raise RuntimeError("this shard always fails")
    return sweep.run_job(job, attempt)


def table(rows) -> pd.DataFrame:
    frame = rows if isinstance(rows, pd.DataFrame) else sweep.rows_frame(rows)
    return frame.sort_values(["job", "black"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference():
    """Every GRID job run in this process, one torch thread like each worker: the expected rows."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [row for rows in sweep.SerialExecutor().run(GRID.jobs()) for row in rows]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("markers")
    old = os.environ.get(MARKERS)
    os.environ[MARKERS] = str(folder)  # before any worker starts: spawned and Ray workers inherit it
    yield folder
    if old is None:
        os.environ.pop(MARKERS, None)
    else:
        os.environ[MARKERS] = old


@pytest.fixture
def fresh_markers(markers):
    for marker in markers.iterdir():
        marker.unlink()
    return markers


@pytest.fixture(scope="module")
def ray_cluster(markers):
    """A local Ray instance with 2 worker CPUs, shut down after the module's tests."""
    ray = require("ray", "pip install -r requirements.txt")
    old = os.environ.get("PYTHONPATH")
    # Ray workers import `chaos` from this module: they need tests/ on their path.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "tests"), old) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def assert_chaos_outcome(rows, reference, retries: int):
    """The killed shard came back on attempt 2, the failing one is reported, the rest equal the reference."""
    got = table(rows)
    keys = {(j.attack, j.shard): j.key for j in GRID.jobs()}
    assert len(got) == len(GRID.jobs()) and got["job"].is_unique  # one black-box model: one row per job
    killed = got[got["job"] == keys[("fgsm", 0)]].iloc[0]
    assert killed["status"] == "ok" and killed["attempt"] == 2
    failing = got[got["job"] == keys[("tpgd", 1)]].iloc[0]
    assert failing["status"] == "failed" and failing["attempt"] == retries + 1
    assert "this shard always fails" in failing["message"] and pd.isna(failing["error"])
    done = got[got["status"] == "ok"]
    expected = table(reference)
    expected = expected[expected["job"].isin(done["job"])]
    pd.testing.assert_frame_equal(
        done.drop(columns=VOLATILE).reset_index(drop=True), expected.drop(columns=VOLATILE).reset_index(drop=True)
    )
    # Models are loaded once per worker process however many of its jobs need them.
    assert (done.drop_duplicates("job").groupby("worker")["loads"].sum() <= 2).all()


# ---- the grid ----------------------------------------------------------------------------------------


def test_grid_expands_attacks_models_eps_layers_and_shards():
    grid = sweep.Grid(
        attacks=["fgsm", "aa", "deepfool"],
        whites=[WHITE, "fmnist-vgg-0"],
        blacks=[WHITE, BLACK],
        eps=[0.05, 0.1],
        layers=[2, 3],
        images=25,
        shard_size=10,
    )
    jobs = grid.jobs()
    # fgsm: 2 ε; aa: 2 ε × 2 layers; deepfool: no ε, no layer → 7 settings × 2 white-box models × 3 shards
    assert len(jobs) == 7 * 2 * 3 and len({j.key for j in jobs}) == len(jobs)
    assert sorted({(j.start, j.stop) for j in jobs}) == [(0, 10), (10, 20), (20, 25)]
    assert {j.blacks for j in jobs if j.white == WHITE} == {(BLACK,)}  # never its own black box
    assert {j.layer for j in jobs if j.attack != "aa"} == {None}
    assert {j.eps for j in jobs if j.attack == "deepfool"} == {None}
    assert {j.steps for j in jobs if j.attack == "aa"} == {10} and {j.steps for j in jobs if j.attack == "fgsm"} == {
        None
    }
    default = sweep.Grid(attacks=["pgd"], whites=[WHITE], blacks=[BLACK], images=4, shard_size=4).jobs()
    assert [j.eps for j in default] == [0.2]  # the Fashion-MNIST default budget


@pytest.mark.parametrize(
    "change, message",
    [
        ({"whites": ["no-such-model"]}, "unknown model"),
        ({"blacks": ["efficientnet-lite0"]}, "share one domain"),
        ({"eps": [1.5]}, "outside its range"),
        ({"params": {"kappa": 1.0}}, "not a parameter of"),
        ({"params": {"eps": 0.1}}, "sweep axis"),
        ({"attacks": ["tmifgsm"], "params": {"decay": 0.5}}, "not a parameter of"),  # TMIFGSM's μ = 1 is fixed
        ({"layers": [99]}, "layer index 99 out of range"),
        ({"blacks": [WHITE]}, "no black-box model other than itself"),
        ({"shard_size": 0}, "at least 1"),
    ],
)
def test_grid_refuses_bad_settings_before_any_work(change, message):
    with pytest.raises(ValueError, match=message):
        replace(GRID, **change).jobs()


# ---- executors ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_local_executor_gives_the_serial_rows(reference):
    rows = [row for rows in sweep.LocalExecutor(workers=2).run(GRID.jobs()) for row in rows]
    got, expected = table(rows), table(reference)
    pd.testing.assert_frame_equal(got.drop(columns=VOLATILE), expected.drop(columns=VOLATILE))
    assert (got["attempt"] == 1).all() and got["worker"].nunique() <= 2
    assert (got.drop_duplicates("job").groupby("worker")["loads"].sum() <= 2).all()  # white + black, once per worker
    assert got.loc[got["attack"] == "aa", "layer"].notna().all()
    assert got.loc[got["attack"] == "tpgd", "tSuc"].notna().all()  # targeted
    assert got.loc[got["attack"] == "fgsm", ["tSuc", "tTR", "white_tSuc"]].isna().all().all()  # untargeted


@pytest.mark.slow
def test_local_executor_retries_a_killed_worker_and_reports_a_failing_job(reference, fresh_markers):
    rows = list(sweep.LocalExecutor(workers=2, retries=2, task=chaos).run(GRID.jobs()))
    assert all(len(r) == 1 for r in rows)
    assert_chaos_outcome([row for r in rows for row in r], reference, retries=2)


def test_serial_executor_reports_a_failing_job_after_its_retries(reference):
    jobs = [j for j in GRID.jobs() if j.attack == "tpgd"]
    rows = table([row for rows in sweep.SerialExecutor(retries=1, task=chaos).run(jobs) for row in rows])
    assert list(rows.sort_values("shard")["status"]) == ["ok", "failed"]
    assert rows.loc[rows["status"] == "failed", "attempt"].item() == 2


@pytest.mark.slow
def test_ray_executor_on_two_local_workers_matches_and_retries(ray_cluster, reference, fresh_markers):
    executor = sweep.RayExecutor(retries=2, task=chaos)
    rows = [row for rows in executor.run(GRID.jobs()) for row in rows]
    assert_chaos_outcome(rows, reference, retries=2)


@pytest.mark.slow
def test_cli_sweep_on_ray_writes_the_file_the_app_reads(ray_cluster, tmp_path, capsys):
    out = tmp_path / "sweep.parquet"
    code = main(
        [
            "sweep",
            "--models",
            WHITE,
            "--black",
            BLACK,
            "--attack",
            "fgsm",
            "aa",
            "--eps",
            "0.1",
            "0.2",
            "--n",
            "6",
            "--shard-size",
            "3",
            "--steps",
            "2",
            "--out",
            str(out),
            "--ray",
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["jobs"] == 8 and report["failed"] == 0 and report["executor"].startswith("ray")
    assert len(report["summary"]) == 4 and all(r["images"] == 6 for r in report["summary"])
    assert len(sweep.load_results(out)) == 8
    assert (
        main(["sweep", "--models", WHITE, "--black", BLACK, "--attack", "fgsm", "--n", "6", "--out", str(out), "--ray"])
        == 2
    )  # exists: --resume or --overwrite
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--attack", "fgsm", "--param", "alpha"], "NAME=VALUE"),
        (["--attack", "fgsm", "--param", "decay=2"], "not a parameter of"),
        (["--attack", "fgsm", "--out", "x.xlsx"], ".csv or .parquet"),
        (["--attack", "nope"], "invalid choice"),
    ],
)
def test_cli_sweep_errors_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["sweep", "--models", WHITE, "--black", BLACK, "--out", "out.csv"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_ray_is_not_imported_by_the_engine_or_a_local_sweep():
    code = (
        "import sys, engine.sweep, engine.cli; from engine import sweep; "
        "sweep.make_executor(ray=None); assert 'ray' not in sys.modules, 'ray imported'"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def test_ray_address_selects_ray(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    executor = sweep.make_executor()
    assert isinstance(executor, sweep.RayExecutor) and executor.address == "head:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert isinstance(sweep.make_executor(), sweep.LocalExecutor)
    assert sweep.make_executor(ray="").address is None  # --ray alone: a local Ray instance


# ---- the results file -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_results_round_trip_through_the_file(reference, tmp_path, suffix):
    path = tmp_path / f"results{suffix}"
    results = sweep.ResultsFile(path)
    for i in range(0, len(reference), 2):  # written as jobs stream in
        results.add(reference[i : i + 2])
    expected = sweep.rows_frame(reference)
    pd.testing.assert_frame_equal(sweep.load_results(path), expected)
    pd.testing.assert_frame_equal(sweep.load_results(path.read_bytes(), name=path.name), expected)
    assert len(sweep.summarise(expected)) == 3  # three settings, two shards each


def test_summary_pools_shards_by_each_rates_denominator(reference):
    frame = sweep.rows_frame(reference)
    summary = sweep.summarise(frame).set_index("attack")
    single = replace(GRID, shard_size=8).jobs()  # the same images in one shard
    whole = table([row for job in single for row in sweep.run_job(job)]).set_index("attack")
    for attack in ("fgsm", "aa"):  # tpgd's random start is seeded per attack call: its shards differ by design
        for metric in ("n", "error", "uTR", "white_error"):
            assert summary.loc[attack, metric] == pytest.approx(whole.loc[attack, metric])


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("junk.parquet", b"not a parquet file", "could not be read as Parquet"),
        ("junk.csv", b"a,b\n1,2\n", "lacks the column(s) job, status"),
        ("junk.csv", b"", "could not be read as CSV"),
        ("results.xlsx", b"PK", ".csv or .parquet"),
    ],
)
def test_bad_files_are_refused_with_the_reason(name, data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sweep.load_results(data, name=name)


class _StopsAfter:
    """Runs jobs in-process and dies (as Ctrl-C would) after `count` of them: a killed sweep."""

    def __init__(self, count: int | None = None):
        self.count, self.seen = count, []

    def describe(self) -> str:
        return "test"

    def run(self, jobs):
        for i, job in enumerate(jobs):
            if i == self.count:
                raise KeyboardInterrupt
            self.seen.append(job.key)
            yield sweep.run_job(job)


def test_a_killed_sweep_keeps_finished_jobs_and_resume_runs_only_the_rest(tmp_path):
    out = tmp_path / "sweep.csv"
    grid = replace(GRID, attacks=["fgsm"], eps=[0.1, 0.2])
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(grid, out, executor=_StopsAfter(3))
    assert len(sweep.load_results(out)) == 3
    with pytest.raises(ValueError, match="exists"):
        sweep.run_sweep(grid, out, executor=_StopsAfter())
    rest = _StopsAfter()
    report = sweep.run_sweep(grid, out, executor=rest, resume=True)
    assert report["skipped"] == 3 and report["run"] == 1 and len(rest.seen) == 1
    assert sorted(sweep.load_results(out)["job"]) == sorted(j.key for j in grid.jobs())
    # A failed job is not "done": resume runs it again and replaces its failed row.
    frame = sweep.load_results(out)
    frame.loc[0, "status"] = "failed"
    frame.to_csv(out, index=False)
    again = _StopsAfter()
    assert sweep.run_sweep(grid, out, executor=again, resume=True)["run"] == 1
    final = sweep.load_results(out)
    assert len(final) == 4 and (final["status"] == "ok").all()


# ---- the app page ---------------------------------------------------------------------------------


def upload(at: AppTest, name: str, content: bytes) -> None:
    box = next(u for u in at.get("file_uploader") if u.key == "sweeps.file")  # the sidebar has its own uploader
    box.upload(name, content, "application/octet-stream").run()


@pytest.mark.slow
def test_app_page_opens_a_results_file_and_refuses_junk(reference):
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page("views/sweeps.py").run()
    assert not at.exception and not at.error
    buf = io.BytesIO()
    sweep.rows_frame(reference).to_parquet(buf, index=False)
    upload(at, "sweep.parquet", buf.getvalue())
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1 and len(at.dataframe) >= 1  # one black-box model: one panel
    at.selectbox(key="sweeps.metric").set_value("uTR").run()
    assert not at.exception and not at.error
    upload(at, "junk.csv", b"a,b\n1,2\n")
    assert not at.exception
    assert any("cannot be opened" in e.value and "lacks the column" in e.value for e in at.error)
    upload(at, "junk.parquet", b"\x00garbage")
    assert not at.exception and any("could not be read as Parquet" in e.value for e in at.error)


def test_one_step_jobs_at_many_eps_share_one_gradient_and_match_their_own_runs(monkeypatch):
    """A sweep's FGSM jobs at other ε reuse their shard's direction (one gradient per shard,
    not per ε), and each row equals a plain FGSM run at that ε."""
    from engine import models
    from engine.analysis.transfer import adversarial

    monkeypatch.setattr(cache, "_DIRECTIONS", {})
    calls = []  # every attack run of the sweep: one per shard when the direction is reused
    monkeypatch.setattr(runner, "adversarial", lambda *a, **k: calls.append(1) or adversarial(*a, **k))
    grid = sweep.Grid(attacks=["fgsm"], whites=[WHITE], blacks=[BLACK], eps=[0.05, 0.1, 0.2], images=8, shard_size=4)
    rows = [row for job in grid.jobs() for row in sweep.run_job(job)]
    assert len(calls) == 2  # two shards, three ε
    white, black = models.load(WHITE, device="cpu"), models.load(BLACK, device="cpu")
    imageset = cache.image_set(white, 8, "cpu")
    for job, row in zip(grid.jobs(), rows):
        x, y = imageset.x[job.start : job.stop], imageset.y[job.start : job.stop]
        x_adv, _, _ = adversarial(white, "fgsm", x, y, eps=job.eps)
        with torch.no_grad():
            assert row["error"] == pytest.approx(
                float(
                    (black(x_adv).argmax(1) != y)[(white(x).argmax(1) == y) & (black(x).argmax(1) == y)].float().mean()
                )
            )
        assert row["linf"] == pytest.approx(job.eps, abs=1e-6)
