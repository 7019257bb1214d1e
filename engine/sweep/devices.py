"""Which device each sweep job runs on: the plan is pure (jobs in, jobs out), so it is tested without a GPU.

`--device cuda` means every GPU of the machine: a local sweep deals its shards round-robin over cuda:0,
cuda:1, … with one pool of worker processes per GPU; a list (`cuda:0,cuda:2`) names the GPUs to use. On Ray
the cluster places tasks: each asks for a share of one GPU (`num_gpus`) and sees that GPU as its `cuda`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace

import torch

from engine.sweep.grid import Job

# Tests of the plan run on CPU-only CI, where device_count() is 0: this variable stands in for the GPUs
# a machine would have. It changes only the plan; jobs placed on fake GPUs fail when they run.
FAKE_GPUS = "PE_FAKE_GPUS"
# Ray tasks per GPU. One attack job alone leaves its GPU idle while it loads models, draws targets and
# scores black boxes on the host; two overlap that, and the largest job (Lite0, 250 images with gradients)
# fits twice in an H100's memory.
TASKS_PER_GPU = 2


def gpu_count() -> int:
    """The GPUs this process sees (PE_FAKE_GPUS overrides torch.cuda.device_count())."""
    fake = os.environ.get(FAKE_GPUS, "").strip()
    if fake:
        if not fake.isdigit():
            raise ValueError(f"{FAKE_GPUS} must be a whole number of GPUs, got {fake!r}")
        return int(fake)
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def is_cuda(device: str | None) -> bool:
    return device is not None and device.split(":")[0].strip() == "cuda"


def devices(device: str | None, gpus: int | None = None) -> list[str | None]:
    """The devices a sweep's shards are dealt to: `cuda` → every GPU, `cuda:0,cuda:1` → those, else the one given.

    A CUDA device this machine lacks is a ValueError now, not a failure of every job after its retries.
    """
    gpus = gpu_count() if gpus is None else gpus
    names = [None] if device is None else [d.strip() for d in device.split(",") if d.strip()]
    if not names:
        raise ValueError("--device: name a device (cpu, cuda, cuda:0,cuda:1, mps)")
    if any(is_cuda(d) for d in names):
        if not all(is_cuda(d) for d in names):
            raise ValueError(f"--device {device}: a device list holds GPUs only (cuda:0,cuda:1)")
        if gpus == 0:
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible")
        if names == ["cuda"]:
            return [f"cuda:{i}" for i in range(gpus)] if gpus > 1 else ["cuda"]
        for name in names:
            index = name.partition(":")[2]
            if not index.isdigit() or int(index) >= gpus:
                raise ValueError(f"--device {device}: {name} is not one of this machine's {gpus} GPU(s)")
    elif len(names) > 1:
        raise ValueError(f"--device {device}: only GPUs can be listed")
    return list(dict.fromkeys(names))


def place(jobs: Sequence[Job], gpus: int | None = None) -> list[Job]:
    """Each job with its own device: a GPU job's shards dealt round-robin over the GPUs its device names."""
    gpus = gpu_count() if gpus is None else gpus
    dealt: dict[str | None, int] = {}
    out = []
    for job in jobs:
        choices = devices(job.device, gpus)
        turn = dealt.get(job.device, 0)
        dealt[job.device] = turn + 1
        out.append(replace(job, device=choices[turn % len(choices)]))
    return out


def lanes(jobs: Sequence[Job], workers: int | None, cpus: int) -> dict[str | None, int]:
    """Worker processes per device for placed jobs: CPU jobs share `workers` (default: one per core);
    each GPU gets its share of `workers` (default one process per GPU, which keeps it busy on its own)."""
    used = list(dict.fromkeys(job.device for job in jobs))
    gpus = [d for d in used if is_cuda(d)]
    out: dict[str | None, int] = {}
    for device in used:
        if device in gpus:
            share = math.ceil(workers / len(gpus)) if workers else 1
        else:
            share = workers or cpus
        count = sum(job.device == device for job in jobs)
        out[device] = max(1, min(share, count))
    return out


def ray_options(device: str | None, gpus: float) -> dict:
    """A Ray task's resources: one CPU, and a share of one GPU when the cluster has GPUs and the job may use one."""
    options: dict = {"num_cpus": 1}
    if gpus > 0 and (device is None or is_cuda(device)):
        options["num_gpus"] = 1 / TASKS_PER_GPU
    return options


def ray_device(device: str | None) -> str | None:
    """A Ray task sees only the GPU Ray gave it (CUDA_VISIBLE_DEVICES), always as `cuda`."""
    return "cuda" if is_cuda(device) else device
