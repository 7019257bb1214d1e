"""A small transfer sweep run in the app's own process: what the Sweep results page shows before a file is opened.

Its own module: engine.sweep imports engine.analysis.transfer, so the sweep's runner cannot live there.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from engine import domains, models, sweep


def run(white: str, blacks: Sequence[str]) -> pd.DataFrame:
    """A sweep of `white` (a built-in model) on `blacks` by its domain's "sweep" defaults (attacks, ε grid,
    images), job after job here: the table a results file of `python -m engine sweep` holds, for a first look."""
    domain = next(row["domain"] for row in models.available() if row["name"] == white)
    own = domains.get(domain).defaults["sweep"]
    grid = sweep.Grid(
        attacks=list(own["attacks"]),
        whites=[white],
        blacks=list(blacks),
        eps=list(own["eps"]),
        images=own["images"],
        shard_size=own["images"],
    )
    rows = [row for found in sweep.SerialExecutor().run(grid.jobs()) for row in found]
    return sweep.rows_frame(rows)
