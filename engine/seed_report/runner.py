"""Run every seed check that applies to a model, in turn, under one progress bar."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import torch

from engine import domains, progress
from engine.report import environment

from .base import CHECKS, Check, Context, why_not


def plan(model, names=None, blacks=()) -> tuple[list[Check], list[dict]]:
    """(the checks that apply to `model`, and a {name, title, seed, reason} row for each that does not);
    `names` picks checks by name (default: all), `blacks` are the user's black-box models (default: the domain's)."""
    unknown = sorted(set(names or ()) - {c.name for c in CHECKS})
    if unknown:
        raise ValueError(f"unknown seed check {unknown[0]!r}; known: {', '.join(c.name for c in CHECKS)}")
    todo, skipped = [], []
    for check in CHECKS:
        if names and check.name not in names:
            continue
        reason = why_not(check, Context(model, blacks=tuple(blacks)))
        if reason is None:
            todo.append(check)
        else:
            skipped.append({"name": check.name, "title": check.title, "seed": check.seed, "reason": reason})
    return todo, skipped


def _commit() -> str:
    """The code's git commit, where it runs from a clone ("unknown" elsewhere)."""
    try:
        ask = ["git", "rev-parse", "--short", "HEAD"]
        done = subprocess.run(ask, cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def file_name(model_name: str) -> str:
    """The report's default file name: the model's name with anything but letters, digits, _ . - replaced."""
    return f"seed_report_{re.sub(r'[^A-Za-z0-9_.-]+', '_', Path(model_name).name)[:60]}.html"


def expected_seconds(model, names=None, blacks=()) -> float:
    """About how long the report takes on two CPU cores (each check's measured time at report size)."""
    photos = max(model.input_size[1:]) > 64
    return sum(check.seconds[photos] for check in plan(model, names, blacks)[0])


def run(
    model, *, names=None, blacks=(), tiny: bool = False, seed: int = 0, callback: progress.Callback | None = None
) -> dict:
    """The report as a dict: one entry per check run (its Section, seconds, or the error it met), the checks
    that do not apply and why, and `partial` with the checks not run where `callback` cancelled.

    A cancelled check is left out whole: a table over part of its images would read as a finished one."""
    todo, skipped = plan(model, names, blacks)
    started = time.perf_counter()
    report = {
        "model": model.name,
        "domain": domains.of(model).title,
        "size": "tiny (a smoke test: the numbers mean nothing)" if tiny else "report",
        "seed": seed,
        "made": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "environment": {**environment(model.device), "threads": torch.get_num_threads(), "commit": _commit()},
        "checks": [],
        "skipped": skipped,
        "partial": False,
        "not_run": [],
    }
    for i, check in enumerate(todo):
        part = progress.part(callback, i, len(todo), check=check.name)
        ctx = Context(model, tiny=tiny, seed=seed, progress_to=part, blacks=tuple(blacks))
        entry = {
            "name": check.name,
            "title": check.title,
            "seed": check.seed,
            "claim": check.claim,
            "paper": check.paper,
        }
        t0, section = time.perf_counter(), None
        if ctx.go(0, 1):
            try:
                section = check.run(ctx)
            except Exception as err:  # one failing check leaves the others' results, and says why it failed
                section, entry["error"] = None, f"{type(err).__name__}: {err}"
        if ctx.stopped or (section is not None and not section.complete):
            report["partial"] = True
            report["not_run"] = [c.name for c in todo[i:]]
            break
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        entry["section"] = section
        report["checks"].append(entry)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def as_json(report: dict) -> dict:
    """The report without its pictures: what `--json` prints."""
    out = {k: v for k, v in report.items() if k != "checks"}
    out["checks"] = []
    for entry in report["checks"]:
        section = entry.get("section")
        row = {k: v for k, v in entry.items() if k != "section"}
        if section is not None:
            row.update(
                {k: v for k, v in asdict(section).items() if k in ("settings", "headline", "tables", "notes")},
                figures=[f.title for f in section.figures],
            )
        out["checks"].append(row)
    return out
