"""Sweeps on GPUs, tested on the CPU with a fake GPU count (PE_FAKE_GPUS): which device each shard is dealt to,
how many worker processes each GPU gets, and which resources a Ray task asks for. The plan is pure; the
executors are checked to follow it with stand-ins for the jobs (local) and for Ray itself."""

import sys
import types
from dataclasses import replace

import pytest

from engine import sweep
from engine.cli import main
from engine.sweep import devices

WHITE, BLACK = "fmnist-lenet-0", "fmnist-mlp-0"
GRID = sweep.Grid(attacks=["fgsm"], whites=[WHITE], blacks=[BLACK], eps=[0.1], images=8, shard_size=2, steps=1)


def where(job: sweep.Job, attempt: int) -> list[dict]:
    """A job that only says where it ran: the local executor's dispatch without CUDA. Module-level for workers."""
    import os

    return [{"job": job.key, "device": job.device, "pid": os.getpid()}]


def test_gpu_count_is_torchs_unless_faked(monkeypatch):
    monkeypatch.delenv(devices.FAKE_GPUS, raising=False)
    import torch

    assert devices.gpu_count() == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    monkeypatch.setenv(devices.FAKE_GPUS, "3")
    assert devices.gpu_count() == 3
    monkeypatch.setenv(devices.FAKE_GPUS, "two")
    with pytest.raises(ValueError, match="whole number"):
        devices.gpu_count()


def test_two_gpus_four_shards_alternate_and_keep_their_keys(monkeypatch):
    monkeypatch.setenv(devices.FAKE_GPUS, "2")
    jobs = replace(GRID, device="cuda").jobs()
    assert len(jobs) == 4 and {j.device for j in jobs} == {"cuda"}
    placed = devices.place(jobs)
    assert [j.device for j in placed] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert [j.key for j in placed] == [j.key for j in jobs]  # a sweep resumed on other GPUs skips what it has
    assert [j.shard for j in placed] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "device, gpus, expected",
    [
        ("cpu", 0, ["cpu"]),
        ("cpu", 4, ["cpu"]),  # GPUs present but not asked for: the CPU as before
        (None, 0, [None]),
        ("cuda", 1, ["cuda"]),  # one GPU: the jobs' device is unchanged
        ("cuda", 3, ["cuda:0", "cuda:1", "cuda:2"]),
        ("cuda:2, cuda:0", 3, ["cuda:2", "cuda:0"]),
    ],
)
def test_device_lists(device, gpus, expected):
    assert devices.devices(device, gpus) == expected


@pytest.mark.parametrize(
    "device, gpus, message",
    [
        ("cuda", 0, "no CUDA GPU"),
        ("cuda:2", 2, "not one of this machine's 2"),
        ("cuda:0,cpu", 2, "GPUs only"),
        ("cpu,mps", 0, "only GPUs"),
        (",", 0, "name a device"),
    ],
)
def test_devices_the_machine_lacks_are_refused(device, gpus, message):
    with pytest.raises(ValueError, match=message):
        devices.devices(device, gpus)


def test_worker_processes_per_device():
    jobs = [sweep.Job("fgsm", WHITE, (BLACK,), 0.1, None, 1, (), 0, 8, i, 2 * i, 2 * i + 2, "fmnist") for i in range(4)]
    gpu = devices.place([replace(j, device="cuda") for j in jobs], gpus=2)
    assert devices.lanes(gpu, None, cpus=16) == {"cuda:0": 1, "cuda:1": 1}  # one process per GPU by default
    assert devices.lanes(gpu, 4, cpus=16) == {"cuda:0": 2, "cuda:1": 2}
    assert devices.lanes(gpu, 9, cpus=16) == {"cuda:0": 2, "cuda:1": 2}  # never more than a GPU's jobs
    assert devices.lanes(jobs, None, cpus=3) == {"cpu": 3}  # the CPU as before: one per core
    assert devices.lanes(jobs, 2, cpus=3) == {"cpu": 2}


@pytest.mark.parametrize(
    "device, gpus, expected",
    [
        ("cuda", 2.0, {"num_cpus": 1, "num_gpus": 1 / devices.TASKS_PER_GPU}),
        (None, 1.0, {"num_cpus": 1, "num_gpus": 1 / devices.TASKS_PER_GPU}),  # best present: a GPU when there is one
        ("cuda", 0.0, {"num_cpus": 1}),
        (None, 0.0, {"num_cpus": 1}),
        ("cpu", 8.0, {"num_cpus": 1}),  # asked for the CPU: no GPU held idle for it
    ],
)
def test_ray_task_options(device, gpus, expected):
    assert devices.ray_options(device, gpus) == expected
    assert 0 < expected.get("num_gpus", 1) <= 1  # a share of one GPU: a job runs on one device


class Ref:
    """Hashable by identity, like Ray's ObjectRef."""

    def __init__(self, value):
        self.value = value


class FakeRay(types.ModuleType):
    """Just what RayExecutor.run calls: records each task's options and runs it in this process."""

    class exceptions:  # noqa: N801 - mirrors ray.exceptions
        RayError = RuntimeError

    def __init__(self, gpus: float):
        super().__init__("ray")
        self.gpus, self.submitted = gpus, []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2.0, **({"GPU": self.gpus} if self.gpus else {})}

    def remote(self, fn):
        ray = self

        class Remote:
            def options(self, **options):
                class Task:
                    def remote(self, *args):
                        ray.submitted.append(options)
                        return Ref(fn(*args))

                return Task()

        return Remote()

    def wait(self, refs, num_returns):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.value

    def cancel(self, ref, force):
        pass


@pytest.mark.parametrize("gpus", [0.0, 2.0])
def test_ray_executor_asks_for_gpus_only_when_the_cluster_has_them(gpus, monkeypatch):
    fake = FakeRay(gpus)
    monkeypatch.setitem(sys.modules, "ray", fake)
    jobs = [replace(j, device="cuda:1,cuda:0") for j in GRID.jobs()]
    rows = [r for rows in sweep.RayExecutor(task=lambda job, attempt: where(job, attempt)).run(jobs) for r in rows]
    assert len(fake.submitted) == 4 and all(options["num_cpus"] == 1 for options in fake.submitted)
    assert all(("num_gpus" in options) == (gpus > 0) for options in fake.submitted)
    assert {r["device"] for r in rows} == {"cuda"}  # Ray shows a task its one GPU as cuda


@pytest.mark.slow
def test_local_executor_runs_each_gpus_shards_in_that_gpus_own_workers(monkeypatch):
    """Two fake GPUs: the jobs reach their workers placed on cuda:0/cuda:1 alternately, and no worker process serves
    both GPUs (each keeps its models on its own GPU)."""
    monkeypatch.setenv(devices.FAKE_GPUS, "2")
    jobs = [replace(j, device="cuda") for j in GRID.jobs()]
    executor = sweep.LocalExecutor(task=where)
    rows = sorted((r for rows in executor.run(jobs) for r in rows), key=lambda r: [j.key for j in jobs].index(r["job"]))
    assert [r["device"] for r in rows] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    per_pid = {}
    for r in rows:
        per_pid.setdefault(r["pid"], set()).add(r["device"])
    assert len(per_pid) == 2 and all(len(d) == 1 for d in per_pid.values())
    assert executor.describe() == "local, 2 workers on 2 GPUs (cuda:0, cuda:1)"


def test_cli_sweep_refuses_a_gpu_this_machine_lacks_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(devices.FAKE_GPUS, "1")
    out = tmp_path / "sweep.csv"
    argv = ["sweep", "--models", WHITE, "--black", BLACK, "--attack", "fgsm", "--n", "4", "--out", str(out)]
    assert main([*argv, "--device", "cuda:0,cuda:1"]) == 2
    assert "cuda:1 is not one of this machine's 1" in capsys.readouterr().err and not out.exists()
    monkeypatch.setenv(devices.FAKE_GPUS, "0")
    assert main([*argv, "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err and not out.exists()
