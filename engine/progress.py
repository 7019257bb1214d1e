"""The progress/cancel protocol of every long engine operation.

A callback is `callback(step, total, state) -> bool | None`: `step` of `total` is done
(`step` may be fractional when the work is nested), `state` carries whatever the
operation shows (current tensors, `upper_bound=True` when `total` is only a cap).
Returning False stops the operation at the next step; it then returns what it has
(the caller sees `stopped_early` or a shorter list). None is the same as True.

Operations made of parts (a sweep of attacks, an attack per σ, per model pair) give
each part `part(callback, i, n)`: the part reports its own (step, total) and the
caller's bar moves through part i's share of the whole, so pages never copy an
engine loop to get one bar and one Cancel.
"""

from __future__ import annotations

from collections.abc import Callable

Callback = Callable[[float, int, dict], bool | None]


def part(callback: Callback | None, index: int, count: int, **labels) -> Callback | None:
    """The callback for part `index` of `count` of a larger operation: its progress is mapped onto the whole
    (part i at s of t reports i + s/t of count), and `labels` (e.g. sigma=0.1) join its state."""
    if callback is None:
        return None

    def relay(step: float, total: int, state: dict | None = None) -> bool | None:
        share = min(step / total, 1.0) if total else 1.0
        # The whole's count of parts is exact even where a part's own total is only a cap.
        inner = {k: v for k, v in (state or {}).items() if k != "upper_bound"}
        return callback(index + share, count, {**inner, **labels, "part": index + 1, "parts": count})

    return relay
