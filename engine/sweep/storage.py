"""A sweep's tidy results file (CSV or Parquet): writing rows as jobs finish, resuming, reading, pooling shards.

`run_sweep` writes each job's rows as they arrive, so a killed sweep keeps its finished shards and
`resume=True` skips them. `load_results` reads such a file back (the app's "Sweep results" page)
and `summarise` pools the shards.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from engine.sweep.executors import LocalExecutor, Progress
from engine.sweep.grid import Grid
from engine.sweep.runner import describe_error

# The tidy table: one row per (job, black-box model). Nullable dtypes so that "not measured"
# (tSuc of an untargeted attack, ε of DeepFool, the metrics of a failed job) survives CSV and
# Parquet alike as a missing value rather than NaN-or-None depending on the format.
# Per-job columns (seconds, loads: models the job had to load in its worker, 0 when all were
# cached there; worker, attempt) repeat on each of the job's rows.
SCHEMA: dict[str, str] = {
    "job": "string",
    "status": "string",
    "attack": "string",
    "white": "string",
    "black": "string",
    "domain": "string",
    "eps": "Float64",
    "layer": "Int64",
    "steps": "Int64",
    "params": "string",
    "seed": "Int64",
    "shard": "Int64",
    "start": "Int64",
    "stop": "Int64",
    "images": "Int64",
    "n": "Int64",
    "white_error": "Float64",
    "white_tSuc": "Float64",
    "error": "Float64",
    "uTR": "Float64",
    "tSuc": "Float64",
    "tTR": "Float64",
    "l2": "Float64",
    "linf": "Float64",
    "seconds": "Float64",
    "loads": "Int64",
    "worker": "string",
    "attempt": "Int64",
    "message": "string",
}
COLUMNS = list(SCHEMA)
METRICS = ("white_error", "white_tSuc", "error", "uTR", "tSuc", "tTR")
FORMATS = {".csv": "CSV", ".parquet": "Parquet"}
# The settings that make one curve: rows equal on these are shards of the same measurement.
SETTING = ["attack", "white", "black", "domain", "eps", "layer", "steps", "params", "seed"]


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
        raise ValueError(f"{Path(label).name} could not be read as {kind} ({describe_error(err)})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{Path(label).name} is not a sweep results file: it lacks the column(s) {', '.join(missing)}")
    try:
        frame = frame[COLUMNS].astype(SCHEMA)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{Path(label).name} has a column of the wrong type ({describe_error(err)})") from None
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
    the images would have given: error, tSuc and the white-box rates by n, uTR by the
    white-box-fooled count (white_error·n) and tTR by the white-box-hit count (white_tSuc·n).
    """
    ok = frame[frame["status"] == "ok"]
    out = []
    for setting, group in ok.groupby(SETTING, dropna=False, sort=True):
        n = group["n"].astype(float)
        row = dict(zip(SETTING, setting))
        row.update(
            shards=len(group),
            images=int(group["images"].sum()),
            n=int(n.sum()),
            white_error=_pooled(group["white_error"], n),
            white_tSuc=_pooled(group["white_tSuc"], n),
            error=_pooled(group["error"], n),
            tSuc=_pooled(group["tSuc"], n),
            uTR=_pooled(group["uTR"], group["white_error"] * n),
            tTR=_pooled(group["tTR"], group["white_tSuc"] * n),
            l2=_pooled(group["l2"], group["images"]),
            linf=_pooled(group["linf"], group["images"]),
            seconds=float(group["seconds"].sum()),
        )
        out.append(row)
    columns = [*SETTING, "shards", "images", "n", *METRICS, "l2", "linf", "seconds"]
    return pd.DataFrame(out, columns=columns).astype({c: SCHEMA.get(c, "Int64") for c in columns})


def run_sweep(
    grid: Grid, out: str | Path, *, executor=None, resume: bool = False, overwrite: bool = False, progress: bool = False
) -> dict:
    """Run `grid` with `executor` (default: local cores), writing rows to `out` as jobs finish.

    Returns counts: jobs in the grid, skipped (already in `out`, with `resume`), run, failed.
    """
    jobs = grid.jobs()
    results = ResultsFile(out, resume=resume, overwrite=overwrite)
    finished = results.done()
    todo = [job for job in jobs if job.key not in finished]
    executor = executor or LocalExecutor()
    started, failed = time.perf_counter(), 0
    bar = Progress(len(todo), progress)
    try:
        for rows in executor.run(todo):
            results.add(rows)
            failed += any(row["status"] == "failed" for row in rows)
            bar.step(failed)
    finally:
        bar.close()
    return {
        "out": str(results.path),
        "executor": executor.describe(),
        "jobs": len(jobs),
        "skipped": len(jobs) - len(todo),
        "run": len(todo),
        "failed": failed,
        "seconds": round(time.perf_counter() - started, 2),
    }
