"""Transfer sweeps over a grid, on this machine's cores or on a Ray cluster.

A `Grid` (attack × white-box × ε × layer × image shard, every job scored on all black-box models)
expands into `Job`s (grid.py); `run_job` computes one job's tidy rows (runner.py): the transfer
metrics (error, uTR, tSuc, tTR over the images both models classify correctly) and the perturbation
sizes (mean L2, L∞), with what a worker keeps between jobs in cache.py; an executor runs the jobs and
streams the rows back (executors.py); `run_sweep` writes them to a CSV or Parquet file as they
arrive, so a killed sweep keeps its finished shards and `resume=True` skips them; `load_results`
reads such a file back (the app's "Sweep results" page) and `summarise` pools the shards
(storage.py).

    grid = Grid(attacks=["fgsm", "aa"], whites=["fmnist-lenet-0"], blacks=["fmnist-resnet-1"],
                eps=[0.05, 0.1], images=200, shard_size=50)
    run_sweep(grid, "results/sweep.parquet", executor=LocalExecutor(workers=4))

On GPUs (`device="cuda"`), devices.py deals the shards over every GPU (local) or asks Ray for a share of
one GPU per task. Ray is imported only inside `RayExecutor.run`: the app and the CLI never pay for it.
"""

from engine.sweep import devices
from engine.sweep.devices import gpu_count
from engine.sweep.executors import ROOT, LocalExecutor, Progress, RayExecutor, SerialExecutor, Task, make_executor
from engine.sweep.grid import AXES, Grid, Job
from engine.sweep.runner import BATCH, describe_error, failed_rows, run_job
from engine.sweep.storage import (
    COLUMNS,
    FORMATS,
    METRICS,
    SCHEMA,
    SETTING,
    ResultsFile,
    load_results,
    rows_frame,
    run_sweep,
    summarise,
)

__all__ = [
    "AXES",
    "BATCH",
    "COLUMNS",
    "FORMATS",
    "METRICS",
    "ROOT",
    "SCHEMA",
    "SETTING",
    "Grid",
    "Job",
    "LocalExecutor",
    "Progress",
    "RayExecutor",
    "ResultsFile",
    "SerialExecutor",
    "Task",
    "describe_error",
    "devices",
    "failed_rows",
    "gpu_count",
    "load_results",
    "make_executor",
    "rows_frame",
    "run_job",
    "run_sweep",
    "summarise",
]
