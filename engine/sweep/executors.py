"""Where a sweep's jobs run: in this process, in a pool of local worker processes, or as Ray tasks.

Every executor streams each job's rows back as it finishes and retries failed jobs the same way.
Ray is imported only inside `RayExecutor`: the app and the CLI never pay for it.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import torch

from engine.sweep import devices
from engine.sweep.grid import Job
from engine.sweep.runner import describe_error, failed_rows, run_job

ROOT = Path(__file__).resolve().parents[2]  # the checkout holding `engine`

Task = Callable[[Job, int], list[dict]]


class _Retrying:
    """The retry policy every executor shares: `retries` more attempts after the first."""

    def __init__(self, retries: int, task: Task):
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.retries, self.task = retries, task

    def settle(self, job: Job, attempt: int, message: str) -> list[dict] | None:
        """None: run the job again as attempt + 1; else its failed rows."""
        return None if attempt <= self.retries else failed_rows(job, attempt, message)


class SerialExecutor(_Retrying):
    """Every job in this process, one after the other: the reference the parallel executors must match."""

    def __init__(self, retries: int = 0, task: Task = run_job):
        super().__init__(retries, task)

    def describe(self) -> str:
        return "serial"

    def run(self, jobs: Iterable[Job]) -> Iterator[list[dict]]:
        for job in devices.place(list(jobs)):
            attempt = 1
            while True:
                try:
                    yield self.task(job, attempt)
                    break
                except Exception as err:  # noqa: BLE001 - a job's failure is recorded, not fatal to the sweep
                    failed = self.settle(job, attempt, describe_error(err))
                    if failed is not None:
                        yield failed
                        break
                    attempt += 1


def _init_worker(threads: int, environ: dict[str, str]) -> None:
    # A worker forked from the fork server has the environment the server started with: it takes the one of
    # the sweep that starts it, as a spawned worker would (CUDA_VISIBLE_DEVICES and the like are read later,
    # when torch first needs them).
    os.environ.clear()
    os.environ.update(environ)
    # Each process is one of `workers` on the machine's cores: more torch threads than cores
    # each would make them fight over the CPUs and every job slower.
    torch.set_num_threads(threads)


def _worker_context():
    """Where the workers come from. Not fork: forking a process whose torch already started its thread pools
    can hang. A fork server is one fresh process that imports torch and the job code once, before any thread
    starts, and forks each worker from itself: a worker starts in a fraction of the seconds a spawned one
    spends importing, and a pool replaced after a crash, or the next sweep's, starts as fast. Spawn where the
    platform has no fork server."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "engine.sweep.runner"])
    return context


class LocalExecutor(_Retrying):
    """Jobs in pools of worker processes on this machine: one pool per device the jobs are placed on
    (devices.place: a CPU sweep has one pool, by default one process per core; a GPU sweep one pool
    per GPU, by default one process each, its shards dealt round-robin over the GPUs).

    At most a pool's size of its jobs are in flight, so when a worker dies (BrokenProcessPool) the
    jobs that may have been on it are known: each is charged one attempt and re-queued on a fresh
    pool for that device. A job that raises is re-queued the same way; after `retries` it becomes failed rows.
    """

    def __init__(self, workers: int | None = None, retries: int = 2, task: Task = run_job):
        super().__init__(retries, task)
        if workers is not None and workers < 0:
            raise ValueError("workers must be at least 1")
        self.workers = workers or None
        self.sizes: dict = {}  # the last run's worker processes per device

    def describe(self) -> str:
        gpus = {d: n for d, n in self.sizes.items() if devices.is_cuda(d)}
        workers = sum(self.sizes.values()) or self.workers or os.cpu_count() or 1
        text = f"local, {workers} worker{'s' * (workers != 1)}"
        return f"{text} on {len(gpus)} GPU{'s' * (len(gpus) != 1)} ({', '.join(gpus)})" if gpus else text

    def run(self, jobs: Iterable[Job]) -> Iterator[list[dict]]:
        placed = devices.place(list(jobs))
        sizes = self.sizes = devices.lanes(placed, self.workers, os.cpu_count() or 1)
        queues = {device: deque() for device in sizes}
        for job in placed:
            queues[job.device].append((job, 1))
        threads = max(1, (os.cpu_count() or 1) // max(1, sum(sizes.values())))
        context = _worker_context()
        pools: dict = {}
        running: dict = {}  # future -> (job, attempt); job.device names its pool
        try:
            while any(queues.values()) or running:
                for device, queue in queues.items():
                    busy = sum(job.device == device for job, _ in running.values())
                    while queue and busy < sizes[device]:
                        if device not in pools:
                            pools[device] = ProcessPoolExecutor(
                                sizes[device],
                                mp_context=context,
                                initializer=_init_worker,
                                initargs=(threads, dict(os.environ)),
                            )
                        job, attempt = queue.popleft()
                        running[pools[device].submit(self.task, job, attempt)] = (job, attempt)
                        busy += 1
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = set()
                for future in done:
                    job, attempt = running.pop(future)
                    try:
                        rows = future.result()
                    except BrokenProcessPool:
                        broken.add(job.device)
                        rows = self._again(queues, job, attempt, "the worker process died")
                    except Exception as err:  # noqa: BLE001 - the job raised in its worker: recorded, retried
                        rows = self._again(queues, job, attempt, describe_error(err))
                    if rows is not None:
                        yield rows
                for device in broken:  # that pool is unusable: re-queue what was in flight on it, start a new one
                    for future, (job, attempt) in list(running.items()):
                        if job.device == device:
                            del running[future]
                            rows = self._again(queues, job, attempt, "the worker process died")
                            if rows is not None:
                                yield rows
                    pools.pop(device).shutdown(wait=False, cancel_futures=True)
        finally:
            for pool in pools.values():
                pool.shutdown(wait=not running, cancel_futures=True)

    def _again(self, queues: dict, job: Job, attempt: int, message: str) -> list[dict] | None:
        failed = self.settle(job, attempt, message)
        if failed is None:
            queues[job.device].append((job, attempt + 1))
        return failed


def _ray_task(task: Task, job: Job, attempt: int) -> list[dict]:
    # Ray sizes its worker pool to the node's CPUs (one task per CPU): one torch thread each.
    torch.set_num_threads(1)
    return task(job, attempt)


class RayExecutor(_Retrying):
    """Jobs as Ray tasks on a cluster (`address`, else RAY_ADDRESS) or on a local Ray instance.

    Tasks rather than actors: Ray reuses a worker process for the next task, so the
    module-level model cache (engine.sweep.cache) already loads each model once per worker, and tasks
    spread over whatever workers the cluster has without sizing an actor pool.
    Retries are the driver's, not Ray's `max_retries`: a task killed with its worker
    (WorkerCrashedError, a lost node) or one that raised is resubmitted with its attempt
    number, which lands in the rows; Ray's own retries would hide which attempt succeeded.
    Rows stream back through `ray.wait` as tasks finish.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = 2, task: Task = run_job):
        super().__init__(retries, task)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers = workers

    def describe(self) -> str:
        return f"ray ({self.address or 'local instance'})"

    def _connect(self):
        import ray

        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, logging_level="ERROR")
            else:
                ray.init(
                    address="local",
                    num_cpus=self.workers or os.cpu_count(),
                    include_dashboard=False,
                    logging_level="ERROR",
                )
        return ray

    def run(self, jobs: Iterable[Job]) -> Iterator[list[dict]]:
        ray = self._connect()
        # Workers on other nodes find `engine` in the same checkout path as here (README, "Sweeps").
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        remote = ray.remote(_ray_task)
        fixed = {"max_retries": 0, "retry_exceptions": False, "runtime_env": {"env_vars": {"PYTHONPATH": path}}}
        # The cluster's GPUs, not this driver's: a head node without one may lead GPU workers.
        gpus = float(ray.cluster_resources().get("GPU", 0))
        pending: dict = {}

        def submit(job: Job, attempt: int) -> None:
            task = remote.options(**fixed, **devices.ray_options(job.device, gpus))
            pending[task.remote(self.task, job, attempt)] = (job, attempt)

        for job in jobs:
            submit(replace(job, device=devices.ray_device(job.device)), 1)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job, attempt = pending.pop(ref)
                    try:
                        rows = ray.get(ref)
                    except ray.exceptions.RayError as err:  # the task raised, or its worker or node died
                        cause = getattr(err, "cause", None)
                        message = describe_error(cause if isinstance(cause, Exception) else err)
                        rows = self.settle(job, attempt, message)
                        if rows is None:
                            submit(job, attempt + 1)
                            continue
                    yield rows
        finally:
            for ref in pending:  # the consumer stopped early (Ctrl-C): free the cluster
                ray.cancel(ref, force=True)


def make_executor(*, workers: int | None = None, retries: int = 2, ray: str | None = None):
    """Ray when `ray` is given ("" = RAY_ADDRESS or a local instance) or RAY_ADDRESS is set, else local cores."""
    if ray is not None or os.environ.get("RAY_ADDRESS"):
        return RayExecutor(address=ray or None, workers=workers, retries=retries)
    return LocalExecutor(workers=workers, retries=retries)


class Progress:
    """A sweep's progress bar: tqdm on stderr (pinned in requirements.txt); silent when not asked for."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="job", file=sys.stderr, dynamic_ncols=True)

    def step(self, failed: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix(failed=failed, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
