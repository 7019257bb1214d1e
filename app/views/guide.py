"""Method guide: every term the app shows, defined (engine/glossary.py, also docs/methods.md)."""

from __future__ import annotations

import streamlit as st

from app import report_section
from engine import glossary


def page() -> None:
    st.title("Method guide")
    report_section.show()
    st.subheader("Terms")
    st.caption("What every number and picture in this app means. The same text is in docs/methods.md.")
    for term, (short, long) in glossary.TERMS.items():
        st.markdown(f"**{term}** — {short} {long}".rstrip())


if __name__ == "__main__":  # run as a Streamlit page file (st.navigation)
    page()
