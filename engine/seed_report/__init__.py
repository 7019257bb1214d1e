"""The one-click seed report: every check of a source paper's claim that applies to one model, run at report size,
written as one self-contained HTML file with the paper's numbers beside ours.

    from engine import seed_report
    report = seed_report.run(model, callback=progress)     # engine.progress; a cancel gives report["partial"]
    Path("report.html").write_text(seed_report.render(report))

Adding a check: write `def _mine(ctx: Context) -> Section` in a module here (ctx.images(n), ctx.size(tiny,
small, photos), ctx.callback for the engine's operations) and `register(Check("name", title, seed, claim,
paper's number, _mine, needs=...))`, then import the module below. Checks run in the order registered.
"""

from __future__ import annotations

from . import seed000, seed001, seed002, seed004  # noqa: F401  (each registers its checks)
from .base import CHECKS, Check, Context, Figure, Section, Table, register
from .html import render
from .runner import as_json, expected_seconds, file_name, plan, run

__all__ = [
    "CHECKS",
    "Check",
    "Context",
    "Figure",
    "Section",
    "Table",
    "as_json",
    "expected_seconds",
    "file_name",
    "plan",
    "register",
    "render",
    "run",
]
