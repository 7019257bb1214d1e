"""Progress bars with a Cancel button, usable as the engine's `callback(step, total, state)`.

Streamlit stops a running script by raising a control exception at its next
`st.*` call when the user clicks anything (Cancel included). The bar's update is
that call: we catch the exception there and return False, so the engine stops and
hands back its partial result. Until the script ends, Streamlit may raise again at
any later `st.*` call, session-state writes included, so `finish(keep)` stores the
result while catching those too, and only then re-raises the interrupt: the rerun
shows the partial result instead of losing it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

import streamlit as st

from engine import compute

_ACTIVE: dict[int, Progress] = {}  # script thread → its unfinished bar (one script run per thread)
_STORE_TRIES = 4  # each raise consumes one pending request; a STOP repeats forever, so the tries are bounded
# Each bar update is a message to the browser: a small model's C&W takes thousands of steps a second,
# so the bar redraws at most this often (a click is still seen within this time).
_REDRAW_S = 0.25


def is_script_control(exc: BaseException) -> bool:
    """Is `exc` Streamlit's own stop or rerun (st.stop(), st.rerun(), a click while the script runs)?

    Streamlit raises those as BaseExceptions that are not Exceptions, so that a page's `except Exception` lets
    them through; the interpreter's own BaseExceptions (an interrupt, an exit, a closed generator) are not them.
    Only code that must catch the interrupt itself asks this: everything else simply catches Exception.
    """
    return not isinstance(exc, (Exception, KeyboardInterrupt, SystemExit, GeneratorExit))


def _clock(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def progress_text(
    label: str, step: float, total: int, elapsed: float, upper_bound: bool = False, queries: int | None = None
) -> str:
    """'PGD: step 3 of 10 · 2 s, about 5 s left'; a share where steps are fractions of nested work; for attacks
    that stop at success, 'step 25, at most 7526' with no estimate (the end is not known); and for attacks that
    only query the model, the queries spent (they stop when their budget is, not at success)."""
    fraction = min(step / max(total, 1), 1.0)
    if queries is not None:
        return f"{label}: step {int(step)}, at most {total} · {queries:,} queries · {_clock(elapsed)}"
    if upper_bound:
        return f"{label}: step {int(step)}, at most {total} (stops once it succeeds) · {_clock(elapsed)}"
    done = f"step {int(step)} of {total}" if float(step).is_integer() else f"{fraction:.0%}"
    if fraction <= 0 or elapsed < 1.0:
        return f"{label}: {done}"
    return f"{label}: {done} · {_clock(elapsed)}, about {_clock(elapsed * (1 - fraction) / fraction)} left"


def _spent(state: dict) -> int | None:
    """The most queries any image has spent, where the run counts them (a tensor per image, or a number)."""
    queries = state.get("queries")
    if queries is None:
        return None
    return int(queries.max()) if hasattr(queries, "max") else int(queries)


class Progress:
    def __init__(self, label: str, key: str):
        self.label = label
        bar_col, button_col = st.columns([6, 1])
        self.bar = bar_col.progress(0.0, text=f"{label}…")
        self.button = button_col.empty()
        self.button.button("Cancel", key=f"cancel-{key}", help="stop now and keep the partial result")
        self.interrupt: BaseException | None = None  # Streamlit's stop or rerun, raised again by finish()
        self.drawn = 0.0
        _ACTIVE[threading.get_ident()] = self
        # Other sessions' jobs run first (engine.compute): the bar says where this one is in the queue.
        self.held = ExitStack()
        try:
            self.held.enter_context(compute.slot(self._queued))
        except compute.Cancelled:
            pass  # the interrupt is kept: the run returns at its first step and the rerun proceeds
        self.started = time.perf_counter()

    def _draw(self, fraction: float, text: str) -> bool:
        """Update the bar; False once Streamlit interrupted the script (the interrupt is kept for finish())."""
        try:
            self.bar.progress(fraction, text=text)
        except BaseException as stop:
            if not is_script_control(stop):
                raise
            self.interrupt = stop
            return False
        return True

    def _queued(self, ahead: int | None) -> bool:
        waiting = "another program's job" if ahead is None else f"{ahead} job{'s' if ahead != 1 else ''} ahead"
        return self._draw(
            0.0, f"{self.label}: queued, {waiting} (one job computes at a time, so each runs at full speed)"
        )

    def __call__(self, step: float, total: int, state: dict | None = None) -> bool:
        if self.interrupt is not None:
            return False
        now = time.perf_counter()
        if now - self.drawn < _REDRAW_S and step < total:
            return True
        self.drawn = now
        state = state or {}
        text = progress_text(self.label, step, total, now - self.started, bool(state.get("upper_bound")), _spent(state))
        return self._draw(min(step / max(total, 1), 1.0), text)

    @property
    def cancelled(self) -> bool:
        return self.interrupt is not None

    def finish(self, keep: Callable[[], None] | None = None) -> None:
        """Store the (possibly partial) result with `keep`, remove the bar, and let an interrupted run's rerun
        proceed."""
        self.held.close()  # the next job in the queue starts now
        for _ in range(_STORE_TRIES if keep is not None else 0):
            try:
                keep()
                break
            except BaseException as stop:
                if not is_script_control(stop):
                    raise
                self.interrupt = stop  # the newest request carries the newest widget values
        _ACTIVE.pop(threading.get_ident(), None)
        if self.interrupt is not None:
            raise self.interrupt
        self.clear()

    def clear(self) -> None:
        self.bar.empty()
        self.button.empty()


def release_unfinished() -> None:
    """Give back the compute slot of a run that never reached finish() (an error or a stop on the way): called
    after every script run, so a failed job never blocks the others' queue."""
    progress = _ACTIVE.pop(threading.get_ident(), None)
    if progress is not None:
        progress.held.close()


def clear_unfinished() -> None:
    """Remove the bar and Cancel button of a run that ended in an error (called by the page's error boundary)."""
    progress = _ACTIVE.pop(threading.get_ident(), None)
    if progress is not None:
        progress.held.close()
        progress.clear()
