"""Sidebar and form helpers that return what the user chose (`*_ui()` functions)."""
from __future__ import annotations

import streamlit as st

from app import resources
from app.state import RunSpec, Selection
from engine import data as fmnist
from engine import images

DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_IMAGE = "chelsea"


def model_domain(name: str) -> str:
    return next(r["domain"] for r in resources.model_rows() if r["name"] == name)


def model_ui() -> str:
    rows = resources.model_rows()
    usable = [r["name"] for r in rows if r["available"]]
    default = usable.index(DEFAULT_MODEL) if DEFAULT_MODEL in usable else 0
    name = st.sidebar.selectbox("White-box model", usable, index=default, key="model")
    missing = [r for r in rows if not r["available"]]
    if missing:
        with st.sidebar.expander(f"{len(missing)} models not available here"):
            for r in missing:
                st.caption(f"**{r['name']}** — {r['reason']}")
    return name


def image_ui(model: str) -> Selection:
    gallery = list(images.gallery())
    if model_domain(model) == "fashion-mnist":
        return fmnist_ui(model)
    source = st.sidebar.radio("Source image", ["Gallery", "Upload"], horizontal=True, key="image_source")
    if source == "Upload":
        upload = st.sidebar.file_uploader(
            "Image file", type=["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"], key="upload"
        )
        problem = None
        if upload is not None:
            data = upload.getvalue()
            problem = resources.upload_problem(data)
            if problem is None:
                return Selection(model, f"upload:{resources.digest(data)}", upload.name, data)
            st.sidebar.error(f"{upload.name}: {problem}")
        else:
            st.sidebar.caption("No file yet: showing a gallery photo.")
    else:
        problem = None
    default = gallery.index(DEFAULT_IMAGE) if DEFAULT_IMAGE in gallery else 0
    name = st.sidebar.selectbox("Gallery photo", gallery, index=default, key="gallery_image")
    return Selection(model, name, name, problem=problem)


def fmnist_ui(model: str) -> Selection:
    """A Fashion-MNIST test image picked by class and position within the class."""
    bank = resources.fmnist_bank()
    cls = st.sidebar.selectbox("Class", list(bank), format_func=lambda c: fmnist.CLASS_NAMES[c], key="fmnist_class")
    k = st.sidebar.number_input("Example of that class", 0, len(bank[cls]) - 1, 0, key="fmnist_example")
    index = bank[cls][int(k)]
    return Selection(model, f"{resources.FMNIST_PREFIX}{index}", f"Fashion-MNIST test #{index} ({fmnist.CLASS_NAMES[cls]})")


def _param_widget(spec: dict, prefix: str):
    key = f"{prefix}.{spec['name']}"
    label = spec["name"]
    if spec["type"] == "bool":
        return st.checkbox(label, value=bool(spec["default"]), help=spec["help"], key=key)
    if spec["type"] == "int":
        return st.number_input(
            label, min_value=int(spec["low"]), max_value=int(spec["high"]),
            value=None if spec["default"] is None else int(spec["default"]),
            step=1, help=spec["help"], key=key, placeholder="auto",
        )
    step = 0.001 if spec["high"] <= 1 else 0.1
    low = float(spec["low"]) + (step if spec["low_open"] else 0.0)
    value = None if spec["default"] is None else float(spec["default"])
    return st.number_input(
        label, min_value=low, max_value=float(spec["high"]), value=value, step=step,
        format="%.4f", help=spec["help"], key=key, placeholder="auto",
    )


def attack_form(selection: Selection, class_names: list[str]) -> RunSpec | None:
    """The attack picker and its parameter form; returns a RunSpec when submitted."""
    domain = model_domain(selection.model)
    rows = {r["name"]: r for r in resources.attack_rows(domain)}
    name = st.selectbox(
        "Attack", list(rows), format_func=lambda n: rows[n]["title"], key="attack", index=list(rows).index("pgd")
    )
    spec = rows[name]
    st.caption(f"{spec['summary']} — *{spec['reference']}*")
    with st.form(f"attack-form-{name}"):
        cols = st.columns(max(1, min(4, len(spec["params"]))))
        values = {}
        for i, p in enumerate(spec["params"]):
            with cols[i % len(cols)]:
                values[p["name"]] = _param_widget(p, f"{domain}.{name}")
        left, right = st.columns(2)
        target = None
        with left:
            if spec["targeted"]:
                options = [None, *range(len(class_names))]
                automatic = "automatic (random class with a bank image)" if spec["needs_target_images"] else (
                    "automatic (the runner-up class)")
                target = st.selectbox(
                    "Target class" if not spec["untargeted"] else "Target class (targeted attack)", options,
                    key=f"{name}.target",
                    format_func=lambda i: (automatic if not spec["untargeted"] else "none (untargeted)")
                    if i is None else f"{i}: {class_names[i]}",
                )
        with right:
            seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key=f"{name}.seed")
        submitted = st.form_submit_button("Run attack", type="primary")
    params = tuple(sorted((k, v) for k, v in values.items() if v is not None))
    run = RunSpec(selection.model, selection.image_key, name, params, target, int(seed))
    return run if submitted else None


def default_run(selection: Selection) -> RunSpec:
    """What the first screen shows before anyone clicks: PGD with its defaults."""
    return RunSpec(selection.model, selection.image_key, "pgd", (), None, 0)
