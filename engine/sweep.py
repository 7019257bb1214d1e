"""Transfer sweeps over a grid, on this machine's cores or on a Ray cluster (issue 8, item 5).

A `Grid` (attack × white-box × ε × layer × image shard, every job scored on all
black-box models) expands into `Job`s; `run_job` computes one job's tidy rows
with SPEC §2's transfer metrics (error, uTR, tSuc, tTR over the images both
models classify correctly) plus the perturbation sizes of SPEC §5 (mean L2, L∞);
an executor runs the jobs and streams the rows back; `run_sweep` writes them to
a CSV or Parquet file as they arrive, so a killed sweep keeps its finished
shards and `resume=True` skips them. `load_results` reads such a file back
(the app's "Sweep results" page) and `summarise` pools the shards.

    grid = Grid(attacks=["fgsm", "aa"], whites=["fmnist-lenet-0"], blacks=["fmnist-resnet-1"],
                eps=[0.05, 0.1], images=200, shard_size=50)
    run_sweep(grid, "results/sweep.parquet", executor=LocalExecutor(workers=4))

Ray is imported only inside `RayExecutor.run`: the app and the CLI never pay for it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from engine import attacks, domains, models, targets
from engine.analysis.target_images import TargetBank, evaluation_split, target_bank
from engine.analysis.transfer import METHODS, adversarial, score_blacks
from engine.attacks.activation import layer_name
from engine.metrics import norms
from engine.models import ModelUnavailable

ROOT = Path(__file__).resolve().parent.parent

# The tidy table: one row per (job, black-box model). Nullable dtypes so that "not measured"
# (tSuc of an untargeted attack, ε of DeepFool, the metrics of a failed job) survives CSV and
# Parquet alike as a missing value rather than NaN-or-None depending on the format.
# Per-job columns (seconds, loads: models the job had to load in its worker, 0 when all were
# cached there; worker, attempt) repeat on each of the job's rows.
SCHEMA: dict[str, str] = {
    "job": "string", "status": "string", "attack": "string", "white": "string", "black": "string",
    "domain": "string", "eps": "Float64", "layer": "Int64", "steps": "Int64", "params": "string",
    "seed": "Int64", "shard": "Int64", "start": "Int64", "stop": "Int64", "images": "Int64", "n": "Int64",
    "white_error": "Float64", "white_tSuc": "Float64", "error": "Float64", "uTR": "Float64",
    "tSuc": "Float64", "tTR": "Float64", "l2": "Float64", "linf": "Float64",
    "seconds": "Float64", "loads": "Int64", "worker": "string", "attempt": "Int64", "message": "string",
}
COLUMNS = list(SCHEMA)
METRICS = ("white_error", "white_tSuc", "error", "uTR", "tSuc", "tTR")
FORMATS = {".csv": "CSV", ".parquet": "Parquet"}
# The settings that make one curve: rows equal on these are shards of the same measurement.
SETTING = ["attack", "white", "black", "domain", "eps", "layer", "steps", "params", "seed"]
BATCH = 250  # images per attack call inside a job, as engine.analysis.transfer.evaluate does
AXES = ("eps", "steps", "layer")  # attack parameters the grid sweeps itself, not via `params`


# ---- the grid ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One unit of work: one attack setting on one white-box model and one contiguous image shard.

    All black-box models are scored in the same job because the adversarial images are the
    expensive part and every black-box model needs the same ones.
    """

    attack: str
    white: str
    blacks: tuple[str, ...]
    eps: float | None
    layer: int | None
    steps: int | None
    params: tuple[tuple[str, Any], ...]
    seed: int
    images: int  # size of the whole image set; the shard is [start, stop)
    shard: int
    start: int
    stop: int
    domain: str
    device: str | None = "cpu"
    data: str | None = None  # a folder of the user's labelled images (engine.datasets); None: the domain's own

    @property
    def key(self) -> str:
        """A stable id for `resume`: every field that changes the result (the device does not)."""
        fields = asdict(self)
        fields.pop("device")
        if fields["data"] is None:  # keys of sweeps on built-in images stay those of earlier versions
            fields.pop("data")
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def attack_params(self) -> dict:
        given = {"eps": self.eps, "steps": self.steps, **dict(self.params)}
        return {k: v for k, v in given.items() if v is not None}


@dataclass(frozen=True)
class Grid:
    """A sweep: attack × white-box × ε × layer × image shard, each job scored on every black-box model.

    `attacks` are SPEC §2 transfer methods (aa, tmifgsm, tpgd, itcm: targeted, with one seeded
    random target class per image) or catalogue attacks (fgsm, pgd, deepfool, …: untargeted
    against the true label, unless the attack only has a targeted form). `eps=()` and
    `steps=None` mean each attack's default for the domain (SPEC §1: ε = 0.2 on Fashion-MNIST);
    an attack without ε or steps gets one job with none. `layers` only varies attacks with a
    `layer` parameter (AA; None = the middle layer). `params` are further attack parameters, each
    given to the attacks that declare it. Images: the first `images` of the Fashion-MNIST test
    split (its second half is AA's target-image bank, as in `evaluation_split`), or the gallery
    photos for ImageNet models (at most as many as there are), cut into shards of `shard_size`.
    """

    attacks: Sequence[str]
    whites: Sequence[str]
    blacks: Sequence[str]
    eps: Sequence[float] = ()
    layers: Sequence[int | None] = (None,)
    images: int = 200
    shard_size: int = 50
    steps: int | None = None
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str | None = "cpu"
    data: str | None = None  # a folder of labelled images (engine.datasets) instead of the domain's own

    def jobs(self) -> list[Job]:
        """Every job, validated up front so that a typo fails now rather than in every worker."""
        if self.images < 1 or self.shard_size < 1:
            raise ValueError("the number of images and the shard size must be at least 1")
        domain = _grid_domain([*self.whites, *self.blacks])
        count = min(self.images, _image_capacity(domain) if self.data is None else _data_capacity(self.data, self.whites))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        settings = _attack_settings(self, domain)
        _check_layers(self.whites, {layer for _, _, layers, _, _ in settings for layer in layers} - {None})
        shards = [(i, lo, min(lo + self.shard_size, count)) for i, lo in enumerate(range(0, count, self.shard_size))]
        jobs = []
        for attack, eps_values, layers, steps, params in settings:
            for white in dict.fromkeys(self.whites):
                # A model is no black box to itself: its own transfer rate says nothing.
                blacks = tuple(b for b in dict.fromkeys(self.blacks) if b != white)
                if not blacks:
                    raise ValueError(f"white-box model {white} has no black-box model other than itself")
                for eps in eps_values:
                    for layer in layers:
                        jobs += [Job(attack, white, blacks, eps, layer, steps, params, self.seed, count, shard,
                                     lo, hi, domain, self.device, self.data) for shard, lo, hi in shards]
        return jobs


def _grid_domain(names: Sequence[str]) -> str:
    """The one domain of every model named (registered, or a user's model file); unknown or unloadable models
    are refused here."""
    known = {row["name"]: row for row in models.available()}
    for name in names:
        if name not in known and not Path(name.partition("=")[2] or name.removeprefix("hf:")).exists():
            raise ValueError(f"unknown model {name!r}; known models: {', '.join(known)}, or a model file")
        if name in known and not known[name]["available"]:
            raise ModelUnavailable(f"{name}: {known[name]['reason']}")
    found = sorted({known[n]["domain"] if n in known else _model(n, "cpu")[0].domain for n in names})
    if len(found) != 1:
        raise ValueError(f"a sweep's models must share one domain (they see the same images), got {', '.join(found)}")
    return found[0]


def _check_layers(whites: Sequence[str], layers: set[int]) -> None:
    """Refuse a layer index a white-box model lacks here, not in every worker after its retries."""
    for white in dict.fromkeys(whites) if layers else ():
        model = _model(white, "cpu")[0]
        for layer in sorted(layers):
            model.layer(layer)


def _data_capacity(folder: str, whites: Sequence[str]) -> int:
    """The images of a user's folder, once its labels are known to map onto every white-box model."""
    from engine import datasets

    dataset = datasets.open_dataset(folder)
    for white in dict.fromkeys(whites):
        datasets.class_indices(dataset, _model(white, "cpu")[0])  # raises, naming the unmapped labels
    return len(dataset)


def _image_capacity(domain: str) -> int:
    return domains.get(domain).capacity()


def _attack_settings(grid: Grid, domain: str) -> list[tuple]:
    """Per attack: (name, ε values, layers, steps, other params), range-checked against its spec."""
    if not grid.attacks or not grid.whites or not grid.blacks:
        raise ValueError("a sweep needs at least one attack, one white-box and one black-box model")
    misplaced = sorted(set(grid.params) & {*AXES, "target_images"})
    if misplaced:
        raise ValueError(f"{misplaced[0]!r} is a sweep axis, not an extra parameter")
    used, out = set(), []
    for attack in dict.fromkeys(grid.attacks):
        name, fixed = METHODS.get(attack, (attack, {}))
        # A SPEC §2 method's fixed parameters (TMIFGSM's μ = 1) are part of its definition.
        spec = attacks.get(name)
        declared = {p.name: p for p in spec.params if p.name not in fixed}
        defaults = {p["name"]: p["default"] for p in spec.describe(domains.get(domain).attack_defaults)["params"]}
        eps_values = [None]
        if "eps" in declared:
            eps_values = [declared["eps"].check(e) for e in grid.eps] or [defaults["eps"]]
        layers = [None]
        if "layer" in declared:
            layers = [None if layer is None else declared["layer"].check(layer) for layer in grid.layers] or [None]
        steps = None
        if "steps" in declared:
            steps = declared["steps"].check(grid.steps) if grid.steps is not None else defaults["steps"]
        own = {k: declared[k].check(v) for k, v in grid.params.items() if k in declared}
        used |= set(own)
        out.append((attack, list(dict.fromkeys(eps_values)), list(dict.fromkeys(layers)), steps,
                    tuple(sorted(own.items()))))
    unused = sorted(set(grid.params) - used)
    if unused:
        raise ValueError(f"{unused[0]!r} is not a parameter of {', '.join(grid.attacks)}")
    return out


# ---- one job ---------------------------------------------------------------------------------------

class _ImageSet(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    bank_x: torch.Tensor
    bank_y: torch.Tensor


# Per-process caches. A local worker process or a Ray worker runs many jobs; keeping models
# and images here means each worker loads each model once, however many shards it is given.
_MODELS: dict[tuple[str, str | None], Any] = {}
_IMAGES: dict[tuple[str, int, str | None], _ImageSet] = {}
_TARGET_BANKS: dict[tuple, Any] = {}  # one entry: a bank's activations can be large
# One-step attacks' (spec.one_step) directions per shard: the jobs of a shard at other ε reuse the
# gradient instead of recomputing it. Least recently used first out, beyond this many stored values.
_DIRECTIONS: dict[tuple, torch.Tensor] = {}
_DIRECTION_ELEMENTS = 64 * 2**20


def _model(name: str, device: str | None) -> tuple[Any, int]:
    """The cached model and how many loads this call did (0 or 1)."""
    key = (name, device)
    if key in _MODELS:
        return _MODELS[key], 0
    _MODELS[key] = models.open_model(name, device=device)
    return _MODELS[key], 1


def _image_set(white, count: int, device: str | None, folder: str | None = None) -> _ImageSet:
    # Keyed by the white-box model: its bank holds the images it classifies correctly (evaluation_split).
    key = (white.name, count, device, folder)
    if key not in _IMAGES:
        from engine import datasets

        if folder is not None and domains.of(white).custom:  # a user's model: the folder is its domain's images
            white.domain_record = datasets.as_domain(domains.of(white), datasets.open_dataset(folder), f"data:{folder}",
                                                     white)
        if folder is None or domains.of(white).custom:
            (x, y), (bank_x, bank_y) = evaluation_split(white, count)
        else:
            (x, y), (bank_x, bank_y) = datasets.evaluation_split(datasets.open_dataset(folder), white, count)
        _IMAGES[key] = _ImageSet(*(t.to(white.device) for t in (x, y, bank_x, bank_y)))
    return _IMAGES[key]


def _target_bank(white, layer: int, count: int, imageset: _ImageSet) -> TargetBank:
    # Consecutive jobs of a worker are usually shards of the same (model, layer): reuse the
    # bank's activations across them instead of recomputing 5,000 forwards per shard.
    key = (white.name, str(white.device), layer, count, id(imageset))  # imagesets are kept: ids stay unique
    if key not in _TARGET_BANKS:
        _TARGET_BANKS.clear()
        _TARGET_BANKS[key] = target_bank(white, imageset.bank_x, imageset.bank_y, layer)
    return _TARGET_BANKS[key]


def run_job(job: Job, attempt: int = 1) -> list[dict]:
    """One job's tidy rows, one per black-box model (SPEC §2 metrics, SPEC §5 sizes)."""
    started = time.perf_counter()
    cached = [_model(name, job.device) for name in (job.white, *job.blacks)]
    white, blacks = cached[0][0], [model for model, _ in cached[1:]]
    loads = sum(loaded for _, loaded in cached)
    imageset = _image_set(white, job.images, job.device, job.data)
    x, y = imageset.x[job.start:job.stop], imageset.y[job.start:job.stop]
    spec = attacks.get(METHODS.get(job.attack, (job.attack, {}))[0])
    target, bank = None, (imageset.bank_x, imageset.bank_y)
    if job.attack in METHODS or not spec.untargeted:
        # Drawn over the whole image set, then sliced: a shard's targets do not depend on the
        # shard size, and shards do not all replay the same random stream.
        target = targets.random_classes(imageset.y, white.num_classes, job.seed, allowed=imageset.bank_y)[job.start:job.stop]
    if spec.needs_target_images:
        bank = _target_bank(white, white.layer(layer_name(white, job.layer)).index, job.images, imageset)
    if spec.one_step and job.eps is not None:
        x_adv, params = attacks.at_budgets(x, _direction(job, white, x, y, target, bank), [job.eps])[0], {}
    else:
        x_adv, target, params = adversarial(white, job.attack, x, y, target=target, seed=job.seed, batch=BATCH,
                                            bank=bank, layer=job.layer, **job.attack_params())
    size = norms(x_adv - x)
    rows = [{**_identity(job, black.name, attempt), **metrics, "layer": params.get("layer"),
             "l2": float(size["l2"].mean()), "linf": float(size["linf"].mean()), "loads": loads}
            for black, metrics in zip(blacks, score_blacks(white, blacks, x, y, x_adv, target))]
    seconds = time.perf_counter() - started
    return [{**row, "seconds": seconds} for row in rows]


def _direction(job: Job, white, x, y, target, bank) -> torch.Tensor:
    """The shard's one-step direction d (its image at ε is clip(x + ε·d)), made once for all the grid's ε by the
    same batched run as any job, at ε = 1."""
    key = (job.attack, job.white, job.device, job.data, job.images, job.start, job.stop, job.seed, job.params)
    if key in _DIRECTIONS:
        _DIRECTIONS[key] = _DIRECTIONS.pop(key)  # most recently used last
        return _DIRECTIONS[key]
    x_adv, _, _ = adversarial(white, job.attack, x, y, target=target, seed=job.seed, batch=BATCH, bank=bank,
                              layer=job.layer, **{**job.attack_params(), "eps": 1.0})
    found = _DIRECTIONS[key] = (x_adv - x).sign()
    while sum(d.numel() for d in _DIRECTIONS.values()) > _DIRECTION_ELEMENTS and len(_DIRECTIONS) > 1:
        _DIRECTIONS.pop(next(iter(_DIRECTIONS)))
    return found


def _identity(job: Job, black: str, attempt: int) -> dict:
    """The columns that say which measurement a row is, shared by finished and failed rows."""
    return {
        "job": job.key, "status": "ok", "attack": job.attack, "white": job.white, "black": black,
        "domain": job.domain, "eps": job.eps, "layer": job.layer, "steps": job.steps,
        "params": json.dumps(dict(job.params), sort_keys=True), "seed": job.seed, "shard": job.shard,
        "start": job.start, "stop": job.stop, "images": job.stop - job.start,
        "worker": f"{socket.gethostname()}:{os.getpid()}", "attempt": attempt,
    }


def failed_rows(job: Job, attempt: int, message: str) -> list[dict]:
    """What a job that used up its retries leaves in the table: its identity and the reason."""
    return [{**_identity(job, black, attempt), "status": "failed", "worker": None, "message": message}
            for black in job.blacks]


# ---- executors ---------------------------------------------------------------------------------------

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


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


class SerialExecutor(_Retrying):
    """Every job in this process, one after the other: the reference the parallel executors must match."""

    def __init__(self, retries: int = 0, task: Task = run_job):
        super().__init__(retries, task)

    def describe(self) -> str:
        return "serial"

    def run(self, jobs: Iterable[Job]) -> Iterator[list[dict]]:
        for job in jobs:
            attempt = 1
            while True:
                try:
                    yield self.task(job, attempt)
                    break
                except Exception as err:  # noqa: BLE001 - a job's failure is recorded, not fatal to the sweep
                    failed = self.settle(job, attempt, _describe(err))
                    if failed is not None:
                        yield failed
                        break
                    attempt += 1


def _init_worker(threads: int) -> None:
    # Each process is one of `workers` on the machine's cores: more torch threads than cores
    # each would make them fight over the CPUs and every job slower.
    torch.set_num_threads(threads)


class LocalExecutor(_Retrying):
    """Jobs in a pool of worker processes on this machine (default: one per core).

    At most `workers` jobs are in flight, so when a worker dies (BrokenProcessPool) the jobs
    that may have been on it are known: each is charged one attempt and re-queued on a fresh
    pool. A job that raises is re-queued the same way; after `retries` it becomes failed rows.
    """

    def __init__(self, workers: int | None = None, retries: int = 2, task: Task = run_job):
        super().__init__(retries, task)
        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise ValueError("workers must be at least 1")

    def describe(self) -> str:
        return f"local, {self.workers} worker{'s' * (self.workers != 1)}"

    def run(self, jobs: Iterable[Job]) -> Iterator[list[dict]]:
        import multiprocessing

        queue = deque((job, 1) for job in jobs)
        workers = max(1, min(self.workers, len(queue)))
        threads = max(1, (os.cpu_count() or 1) // workers)
        # spawn, not fork: forking a process whose torch already started its thread pools can hang.
        context = multiprocessing.get_context("spawn")
        while queue:
            pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,))
            running: dict = {}
            try:
                while queue or running:
                    while queue and len(running) < workers:
                        job, attempt = queue.popleft()
                        running[pool.submit(self.task, job, attempt)] = (job, attempt)
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    broken = False
                    for future in done:
                        job, attempt = running.pop(future)
                        try:
                            rows = future.result()
                        except BrokenProcessPool:
                            broken = True
                            rows = self._again(queue, job, attempt, "the worker process died")
                        except Exception as err:  # noqa: BLE001 - the job raised in its worker: recorded, retried
                            rows = self._again(queue, job, attempt, _describe(err))
                        if rows is not None:
                            yield rows
                    if broken:  # the pool is unusable: re-queue what was in flight, start a new one
                        for job, attempt in running.values():
                            rows = self._again(queue, job, attempt, "the worker process died")
                            if rows is not None:
                                yield rows
                        running.clear()
                        break
            finally:
                pool.shutdown(wait=not running, cancel_futures=True)

    def _again(self, queue: deque, job: Job, attempt: int, message: str) -> list[dict] | None:
        failed = self.settle(job, attempt, message)
        if failed is None:
            queue.append((job, attempt + 1))
        return failed


def _ray_task(task: Task, job: Job, attempt: int) -> list[dict]:
    # Ray sizes its worker pool to the node's CPUs (one task per CPU): one torch thread each.
    torch.set_num_threads(1)
    return task(job, attempt)


class RayExecutor(_Retrying):
    """Jobs as Ray tasks on a cluster (`address`, else RAY_ADDRESS) or on a local Ray instance.

    Tasks rather than actors: Ray reuses a worker process for the next task, so the
    module-level model cache above already loads each model once per worker, and tasks
    spread over whatever workers the cluster has without sizing an actor pool.
    Retries are the driver's, not Ray's `max_retries`: a task killed with its worker
    (WorkerCrashedError, a lost node) or one that raised is resubmitted with its attempt
    number, which lands in the rows; Ray's own retries would hide which attempt succeeded.
    Rows stream back through `ray.wait` as tasks finish.
    """

    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = 2,
                 task: Task = run_job):
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
                ray.init(address="local", num_cpus=self.workers or os.cpu_count(), include_dashboard=False,
                         logging_level="ERROR")
        return ray

    def run(self, jobs: Iterable[Job]) -> Iterator[list[dict]]:
        ray = self._connect()
        # Workers on other nodes find `engine` in the same checkout path as here (README, "Sweeps").
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        remote = ray.remote(_ray_task).options(
            num_cpus=1, max_retries=0, retry_exceptions=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
        pending: dict = {}

        def submit(job: Job, attempt: int) -> None:
            pending[remote.remote(self.task, job, attempt)] = (job, attempt)

        for job in jobs:
            submit(job, 1)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job, attempt = pending.pop(ref)
                    try:
                        rows = ray.get(ref)
                    except ray.exceptions.RayError as err:  # the task raised, or its worker or node died
                        cause = getattr(err, "cause", None)
                        rows = self.settle(job, attempt, _describe(cause if isinstance(cause, Exception) else err))
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


# ---- the results file ----------------------------------------------------------------------------------

def _format(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{name}: results are a .csv or .parquet file, not {suffix or 'a file without extension'}")
    return FORMATS[suffix]


def rows_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Result rows as the file's typed table (its columns, in its order)."""
    return pd.DataFrame(list(rows), columns=COLUMNS).astype(SCHEMA)


class ResultsFile:
    """The tidy table on disk, updated after every finished job.

    CSV grows by appending; Parquet cannot be appended to, so it is rewritten to a temporary
    file and renamed over the old one: either way a killed sweep leaves a readable file
    holding every job that finished.
    """

    def __init__(self, path: str | Path, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.kind = _format(self.path.name)
        self.frame = rows_frame([])
        if self.path.exists():
            if resume:
                # Failed jobs are run again; keeping their old rows would leave two answers.
                previous = load_results(self.path)
                self.frame = previous[previous["status"] == "ok"].reset_index(drop=True)
            elif not overwrite:
                raise ValueError(f"{self.path} exists: pass --resume to continue that sweep or --overwrite to replace")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._replace(self.frame)

    def done(self) -> set[str]:
        return set(self.frame["job"].dropna())

    def add(self, rows: Sequence[dict]) -> None:
        new = rows_frame(rows)
        self.frame = pd.concat([self.frame, new], ignore_index=True) if len(self.frame) else new
        if self.kind == "CSV":
            with self.path.open("a", newline="") as f:
                new.to_csv(f, header=False, index=False)
                f.flush()
                os.fsync(f.fileno())
        else:
            self._replace(self.frame)

    def _replace(self, frame: pd.DataFrame) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        if self.kind == "CSV":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.path)


def load_results(source: str | Path | bytes, name: str | None = None) -> pd.DataFrame:
    """A sweep's tidy table from a path, or from bytes (an upload) whose file `name` gives the format.

    Raises ValueError naming the problem: not CSV/Parquet, unreadable, missing columns, wrong types.
    """
    label = name or str(source)
    kind = _format(label)
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        frame = pd.read_csv(stream) if kind == "CSV" else pd.read_parquet(stream)
    except Exception as err:  # noqa: BLE001 - the readers raise many types for foreign or truncated files
        raise ValueError(f"{Path(label).name} could not be read as {kind} ({_describe(err)})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{Path(label).name} is not a sweep results file: it lacks the column(s) {', '.join(missing)}")
    try:
        frame = frame[COLUMNS].astype(SCHEMA)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{Path(label).name} has a column of the wrong type ({_describe(err)})") from None
    return frame


def _pooled(rate: pd.Series, weight: pd.Series) -> float | None:
    """Σ rate·weight / Σ weight over the shards where the rate was measured; None where none was."""
    r, w = rate.to_numpy(dtype=float, na_value=float("nan")), weight.to_numpy(dtype=float, na_value=float("nan"))
    keep = ~np.isnan(r) & ~np.isnan(w) & (w > 0)
    total = float(w[keep].sum())
    return None if total == 0 else float((r[keep] * w[keep]).sum()) / total


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per setting (attack, white, black, ε, layer, …), its finished shards pooled.

    Each rate is weighted by its own denominator, so the pooled value is what one job over all
    the images would have given (SPEC §2): error, tSuc and the white-box rates by n, uTR by the
    white-box-fooled count (white_error·n) and tTR by the white-box-hit count (white_tSuc·n).
    """
    ok = frame[frame["status"] == "ok"]
    out = []
    for setting, group in ok.groupby(SETTING, dropna=False, sort=True):
        n = group["n"].astype(float)
        row = dict(zip(SETTING, setting))
        row.update(shards=len(group), images=int(group["images"].sum()), n=int(n.sum()),
                   white_error=_pooled(group["white_error"], n), white_tSuc=_pooled(group["white_tSuc"], n),
                   error=_pooled(group["error"], n), tSuc=_pooled(group["tSuc"], n),
                   uTR=_pooled(group["uTR"], group["white_error"] * n),
                   tTR=_pooled(group["tTR"], group["white_tSuc"] * n),
                   l2=_pooled(group["l2"], group["images"]), linf=_pooled(group["linf"], group["images"]),
                   seconds=float(group["seconds"].sum()))
        out.append(row)
    columns = [*SETTING, "shards", "images", "n", *METRICS, "l2", "linf", "seconds"]
    return pd.DataFrame(out, columns=columns).astype({c: SCHEMA.get(c, "Int64") for c in columns})


# ---- the whole sweep ------------------------------------------------------------------------------------

class _Progress:
    """tqdm on stderr (pinned in requirements.txt); silent when not asked for."""

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


def run_sweep(grid: Grid, out: str | Path, *, executor=None, resume: bool = False, overwrite: bool = False,
              progress: bool = False) -> dict:
    """Run `grid` with `executor` (default: local cores), writing rows to `out` as jobs finish.

    Returns counts: jobs in the grid, skipped (already in `out`, with `resume`), run, failed.
    """
    jobs = grid.jobs()
    results = ResultsFile(out, resume=resume, overwrite=overwrite)
    finished = results.done()
    todo = [job for job in jobs if job.key not in finished]
    executor = executor or LocalExecutor()
    started, failed = time.perf_counter(), 0
    bar = _Progress(len(todo), progress)
    try:
        for rows in executor.run(todo):
            results.add(rows)
            failed += any(row["status"] == "failed" for row in rows)
            bar.step(failed)
    finally:
        bar.close()
    return {"out": str(results.path), "executor": executor.describe(), "jobs": len(jobs),
            "skipped": len(jobs) - len(todo), "run": len(todo), "failed": failed,
            "seconds": round(time.perf_counter() - started, 2)}
