"""Progress bars with a Cancel button, usable as the engine's `callback(step, total, state)`.

Streamlit stops a running script by raising a control exception at its next
`st.*` call when the user clicks anything (Cancel included). The bar's update is
that call: we catch the exception there, return False so the engine stops and
hands back its partial result, and re-raise it in `finish()` once the caller has
stored that result. The rerun then shows the partial result instead of losing it.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException


class Progress:
    def __init__(self, label: str, key: str):
        self.label = label
        bar_col, button_col = st.columns([6, 1])
        self.bar = bar_col.progress(0.0, text=f"{label}…")
        self.button = button_col.empty()
        self.button.button("Cancel", key=f"cancel-{key}", help="stop now and keep the partial result")
        self.interrupt: ScriptControlException | None = None

    def __call__(self, step: float, total: int, state: dict | None = None) -> bool:
        if self.interrupt is not None:
            return False
        try:
            self.bar.progress(min(step / max(total, 1), 1.0), text=f"{self.label}: {step:g} of {total}")
        except ScriptControlException as stop:
            self.interrupt = stop
            return False
        return True

    @property
    def cancelled(self) -> bool:
        return self.interrupt is not None

    def finish(self) -> None:
        """Remove the bar; if the run was interrupted, let Streamlit's rerun proceed now."""
        if self.interrupt is not None:
            raise self.interrupt
        self.bar.empty()
        self.button.empty()
