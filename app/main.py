"""Entry point: `streamlit run app/main.py`. Page config, shared sidebar, navigation."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import widgets  # noqa: E402
from app.views import attack  # noqa: E402


def run() -> None:
    st.set_page_config(page_title="Perturbation Explorer", page_icon="🔬", layout="wide")
    st.sidebar.title("Perturbation Explorer")
    model = widgets.model_ui()
    st.session_state["selection"] = widgets.image_ui(model)
    # Pages are functions, so every rerun goes through this entry point and its sidebar.
    page = st.navigation([st.Page(attack.page, title="Attack", icon="⚡", url_path="attack", default=True)])
    page.run()


run()
