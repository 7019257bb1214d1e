"""Sidebar and form helpers that return what the user chose (`*_ui()` functions)."""

from __future__ import annotations

import streamlit as st

from app import own_model, resources, state
from app.state import RunSpec, Selection
from engine import domains, images

DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_IMAGE = "chelsea"


def initial(key: str, **default) -> dict:
    """A widget's default, unless its value already came from Session State (e.g. from a link):
    Streamlit warns when both are given."""
    return {} if key in st.session_state else default


def model_domain(name: str) -> str:
    own = state.own_models()
    if name in own:
        return own[name].domain
    return next(r["domain"] for r in resources.model_rows() if r["name"] == name)


def usable_models() -> dict[str, str]:
    """Every model this session can use → its domain (offline registry models plus uploaded ones)."""
    rows = {r["name"]: r["domain"] for r in resources.model_rows() if r["available"]}
    rows.update({name: m.domain for name, m in state.own_models().items()})
    return rows


def model_ui() -> str:
    rows = resources.model_rows()
    usable = list(usable_models())
    default = usable.index(DEFAULT_MODEL) if DEFAULT_MODEL in usable else 0
    if st.session_state.get("model") not in usable:
        st.session_state.pop("model", None)
    name = st.sidebar.selectbox("White-box model", usable, key="model", **initial("model", index=default))
    missing = [r for r in rows if not r["available"]]
    if missing:
        with st.sidebar.expander(f"{len(missing)} models not available here"):
            for r in missing:
                st.caption(f"**{r['name']}** — {r['reason']}")
    own_model.own_model_ui()
    return name


def data_ui(model_name: str) -> str:
    """Which labelled images the multi-image analyses use: the domain's own, a folder under the data root
    the operator set, or a .zip uploaded here. Only datasets whose labels map onto the model are offered."""
    from engine import datasets
    from engine.models import ModelUnavailable

    try:
        m = resources.model(model_name)
    except ModelUnavailable:  # the page says why; its analyses use nothing until the model loads
        return resources.BUILTIN
    custom = domains.get(m.domain).custom
    # A user's model has no images of its own: "none yet" until a dataset that fits it is there (then it is used).
    options = {
        resources.BUILTIN: "none yet: upload a .zip below" if custom else f"built-in ({domains.get(m.domain).title})"
    }
    root = resources.data_root()
    with st.sidebar.expander("Evaluation images (Transfer, Feature space, JSMA curve)", expanded=custom):
        if root is not None and root.is_dir():
            for info in resources.data_folders(str(root)):
                try:
                    fits = datasets.fits(resources.dataset(f"folder:{info.name}"), m)
                except ValueError:
                    fits = False
                if fits:
                    options[f"folder:{info.name}"] = f"{info.name} ({info.images} images, {info.layout})"
        for digest, (file_name, chosen) in state.own_datasets().items():
            if datasets.fits(chosen, m):
                options[f"zip:{digest}"] = f"{file_name} ({len(chosen)} images, uploaded)"
        if custom and len(options) > 1:
            options.pop(resources.BUILTIN)
        if st.session_state.get("eval_data") not in options:
            st.session_state["eval_data"] = next(iter(options))
        source = st.radio("Image set", list(options), format_func=options.get, key="eval_data")
        upload = st.file_uploader(
            "Labelled images (.zip: class folders, a file,label CSV or an ImageNet validation layout)",
            type=["zip"],
            key="eval_zip",
        )
        if upload is not None:
            digest = resources.digest(upload.getvalue())
            if digest not in state.own_datasets():
                try:
                    state.own_datasets()[digest] = (
                        upload.name[:40],
                        datasets.open_zip(upload.getvalue(), name=upload.name[:40], **resources.ZIP_LIMITS),
                    )
                    st.rerun()  # offer it above
                except ValueError as err:
                    st.error(str(err))
            elif f"zip:{digest}" not in options:
                st.warning(f"{upload.name}: its labels do not map onto {m.name}'s classes.")
        if root is None:
            st.caption("Folders: start the app with `-- --data-root DIR` (or PE_DATA_ROOT=DIR) to list DIR's datasets.")
    return source


def blacks_ui(white: str) -> list[str]:
    """Black-box (transfer) models: any usable model of the white-box model's domain, hence of its classes
    (drawn inside the caller's sidebar container)."""
    domain = model_domain(white)
    options = [n for n, d in usable_models().items() if d == domain and n != white]
    if st.session_state.get("blacks_domain") != domain:  # first run or a switch of domain: that domain's defaults
        st.session_state["blacks_domain"] = domain
        if st.session_state.get("blacks") is None or not set(st.session_state["blacks"]) <= set(options):
            # A user's domain has no held-out judges: another model with its classes is the natural black box.
            judges = domains.get(domain).judges if domain in domains.names() else options[:1]
            st.session_state["blacks"] = [n for n in judges[:1] if n in options]
    st.session_state["blacks"] = [b for b in st.session_state["blacks"] if b in options]
    return st.multiselect(
        "Black-box models",
        options,
        key="blacks",
        help="models that never see the attack; they measure transfer (only models with the same classes are offered)",
    )


def own_domain(model: str) -> domains.Domain | None:
    """The domain record of one of this session's own models (with its images, once chosen), else None."""
    own = state.own_models().get(model)
    return domains.of(own) if own is not None else None


def image_ui(model: str) -> Selection:
    """The source image (drawn inside the caller's sidebar container): a numbered image of the model's domain
    (its test split, or the labelled images a user's model came with), else a gallery photo or an upload."""
    gallery = list(images.gallery())
    record = own_domain(model)
    domain = model_domain(model)
    if record is None and domain in domains.names():
        record = domains.get(domain)
    if record is not None and record.indexed:
        return indexed_ui(model, record)
    source = st.radio("Source image", ["Gallery", "Upload"], horizontal=True, key="image_source")
    if source == "Upload":
        upload = st.file_uploader(
            "Image file", type=["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"], key="upload"
        )
        problem = None
        if upload is not None:
            data = upload.getvalue()
            problem = resources.upload_problem(data)
            if problem is None:
                return Selection(model, f"upload:{resources.digest(data)}", upload.name, data)
            st.error(f"{upload.name}: {problem}")
        else:
            st.caption("No file yet: showing a gallery photo.")
    else:
        problem = None
    default = gallery.index(DEFAULT_IMAGE) if DEFAULT_IMAGE in gallery else 0
    name = st.selectbox("Gallery photo", gallery, key="gallery_image", **initial("gallery_image", index=default))
    return Selection(model, name, name, problem=problem)


def indexed_ui(model: str, domain) -> Selection:
    """A numbered image picked by class and position within the class."""
    bank = resources.class_members(domain)
    names = domain.class_names  # not the model's: a model that fails to load still lets one pick an image
    # A user's image set has its own classes: its widgets must not inherit a built-in domain's choice.
    keys = (
        ("fmnist_class", "fmnist_example")
        if not domain.custom
        else (f"{domain.prefix}class", f"{domain.prefix}example")
    )
    cls = st.selectbox("Class", list(bank), format_func=lambda c: names[c], key=keys[0])
    k = st.number_input("Example of that class", 0, len(bank[cls]) - 1, key=keys[1], **initial(keys[1], value=0))
    index = bank[cls][int(k)]
    what = "test" if not domain.custom else "image"
    return Selection(model, f"{domain.prefix}{index}", f"{domain.title} {what} #{index} ({names[cls]})")


def no_black_box_text(white: str) -> str:
    """What a page that needs a black-box model says when there is none to choose, or none chosen."""
    m = resources.model(white)
    if any(d == m.domain for n, d in usable_models().items() if n != white):
        return "Choose at least one black-box model in the sidebar."
    return (
        f"Transfer needs a second model with these {len(m.class_names)} classes: add one under *Bring your own "
        "model* in the sidebar."
    )


def has_layers(model, page: str) -> bool:
    """False, after saying why and what to do, when a page needs the model's layers and the model hides them."""
    if not model.layers_unavailable:
        return True
    st.info(f"{page} needs the model's layers: {model.layers_unavailable}.")
    return False


def has_images(model, page: str) -> bool:
    """False, after saying what to do, when a page's analysis needs labelled images and the model has none."""
    if resources.evaluation_capacity(model.name, state.evaluation_source()) > 0:
        return True
    st.info(needs_images_text(page))
    return False


def no_target_text(err) -> str:
    """What a page says when the model classifies correctly the images of one class only (AA needs another)."""
    name = st.session_state.get("model", "the model")
    try:
        names = resources.model(name).class_names
        shown = ", ".join(names[c] for c in err.classes) or "no class"
    except Exception:  # noqa: BLE001 - the sentence stands without the names
        shown = ", ".join(map(str, err.classes)) or "no class"
    return (
        f"AA needs a target image of another class, but of these labelled images {name} classifies correctly "
        f"only those of {shown}: use a model that gets more of them right, or more images."
    )


def needs_images_text(page: str) -> str:
    """What a page that needs labelled images says on a user's model that has none yet."""
    name = st.session_state.get("model", "this model")
    return (
        f"{page} needs labelled images of {name}'s classes. Under *Evaluation images* in the sidebar, upload a "
        ".zip with one folder of images per class (named after the classes), then pick it there."
    )


def _param_widget(spec: dict, prefix: str):
    key = f"{prefix}.{spec['name']}"
    label = spec["name"]
    if spec["type"] == "bool":
        return st.checkbox(label, help=spec["help"], key=key, **initial(key, value=bool(spec["default"])))
    if spec["type"] == "str":
        choices = spec["choices"]
        return st.selectbox(
            label, choices, help=spec["help"], key=key, **initial(key, index=choices.index(spec["default"]))
        )
    if spec["type"] == "int":
        return st.number_input(
            label,
            min_value=int(spec["low"]),
            max_value=int(spec["high"]),
            **initial(key, value=None if spec["default"] is None else int(spec["default"])),
            step=1,
            help=spec["help"],
            key=key,
            placeholder="auto",
        )
    step = 0.001 if spec["high"] <= 1 else 0.1
    low = float(spec["low"]) + (step if spec["low_open"] else 0.0)
    value = None if spec["default"] is None else float(spec["default"])
    return st.number_input(
        label,
        min_value=low,
        max_value=float(spec["high"]),
        step=step,
        **initial(key, value=value),
        format="%.4f",
        help=spec["help"],
        key=key,
        placeholder="auto",
    )


def attack_form(selection: Selection, class_names: list[str]) -> tuple[RunSpec, bool]:
    """The attack picker and its parameter form: the run the form shows, and whether it was just submitted."""
    domain = model_domain(selection.model)
    rows = {r["name"]: r for r in resources.attack_rows(domain)}
    hidden = resources.model(selection.model).layers_unavailable
    withheld = [r["title"].split(" (")[0] for r in rows.values() if hidden and r["needs_layers"]]
    if hidden:  # attacks that hook a layer cannot run on a model that hides its layers
        rows = {n: r for n, r in rows.items() if not r["needs_layers"]}
        if st.session_state.get("attack") not in rows:
            st.session_state.pop("attack", None)
    name = st.selectbox(
        "Attack",
        list(rows),
        format_func=lambda n: rows[n]["title"],
        key="attack",
        **initial("attack", index=list(rows).index("pgd")),
    )
    spec = rows[name]
    st.caption(f"{spec['summary']} — *{spec['reference']}*")
    if withheld:
        st.caption(f"{' and '.join(withheld)} are not offered: they need the model's layers, which this model hides.")
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
                automatic = (
                    "automatic (random class with a bank image)"
                    if spec["needs_target_images"]
                    else ("automatic (the runner-up class)")
                )
                target = st.selectbox(
                    "Target class" if not spec["untargeted"] else "Target class (targeted attack)",
                    options,
                    key=f"{name}.target",
                    format_func=lambda i: (
                        (automatic if not spec["untargeted"] else "none (untargeted)")
                        if i is None
                        else f"{i}: {class_names[i]}"
                    ),
                )
        with right:
            seed = st.number_input(
                "Seed", min_value=0, max_value=2**31 - 1, step=1, key=f"{name}.seed", **initial(f"{name}.seed", value=0)
            )
        submitted = st.form_submit_button("Run attack", type="primary")
    params = tuple(sorted((k, v) for k, v in values.items() if v is not None))
    return RunSpec(selection.model, selection.image_key, name, params, target, int(seed)), submitted


HEAVY_S = 30.0  # longer than this and a run waits for a click that shows its expected time
# Where the time is only a cap (the run stops at success, usually far sooner: DeepFool's 50 steps
# take 2-3), only a cap this long waits.
HEAVY_AT_MOST_S = 120.0


def heavy_gate(name: str, key, seconds: float, fresh: bool, at_most: bool = False) -> bool:
    """May run `key` start now? Quick runs start at once; one expected to take longer than HEAVY_S
    (on this machine, engine.cost) waits under a warning until the user confirms it, the time on the button.

    `fresh` is True on the rerun that asked for `key` (a form submit, an opened link); the request
    stays pending across reruns until confirmed or replaced by another."""
    from engine import cost

    if seconds < (HEAVY_AT_MOST_S if at_most else HEAVY_S):
        return True
    slot = f"heavy.{name}"
    if fresh:
        st.session_state[slot] = key
    if st.session_state.get(slot) != key:
        return False
    words = ("at most " if at_most else "") + cost.phrase(seconds).removeprefix("about ")
    box = st.empty()
    with box.container():
        st.warning(
            f"These settings take {words} on this machine{' (the run stops once it succeeds)' if at_most else ''}. "
            "Lower the steps, images or copies for a quicker result, or start it anyway."
        )
        go = st.button(f"Run anyway ({words})", key=f"{slot}.go", type="primary")
    if go:
        st.session_state.pop(slot, None)
        box.empty()  # the progress bar takes its place
    return go


def pending(name: str):
    """The run waiting behind `heavy_gate(name, ...)`, if any."""
    return st.session_state.get(f"heavy.{name}")


def page_start(title: str, concept: str):
    """Every page's header: title, the presentation-mode explanation, and the chosen models.

    Returns (selection, white-box model, black-box models), or None after showing why a model cannot load.
    """
    from app.text import EXPLAIN
    from engine.models import ModelUnavailable

    selection: Selection = st.session_state["selection"]
    st.title(title)
    if selection.problem:
        st.error(f"The uploaded file cannot be used: {selection.problem} Showing the gallery photo instead.")
    if st.session_state.get("presentation") and concept in EXPLAIN:
        st.info(EXPLAIN[concept])
    try:
        model = resources.model(selection.model)
        blacks = [resources.model(b) for b in st.session_state.get("blacks_chosen", [])]
    except ModelUnavailable as err:
        st.error(str(err))
        return None
    domain_note(model)
    return selection, model, blacks


def domain_note(model) -> None:
    """On a user's own domain, say what it holds and where its budgets come from, since nothing else does."""
    record = domains.of(model)
    if record.custom:
        images_note = f"{record.count()} labelled images" if record.has_images else "no labelled images yet"
        st.caption(
            f"Your own domain *{record.title}*: {len(record.class_names)} classes, {images_note}. Defaults "
            f"(ε {record.attack_defaults.get('eps', 'per attack')}, σ {record.averaging['sigma']}, "
            f"{record.defaults['images']} images) are chosen for {record.origin}."
        )


def gated_run(name: str, key, asked: bool, seconds, label: str, compute, *, at_most: bool = False, redo=None):
    """The result stored under `key`. When none is stored (or `redo(result)` says to run again) and the user
    asked for it, now or behind `heavy_gate`, `compute(progress)` runs under a progress bar with a Cancel
    button once the gate passes; `seconds()` prices the run only then. A cancelled run keeps what finished."""
    from app.jobs import Progress

    found = state.analysis(key)
    if (
        (asked or pending(name) == key)
        and (found is None or (redo is not None and redo(found)))
        and heavy_gate(name, key, seconds(), asked, at_most=at_most)
    ):
        progress = Progress(label, name)
        found = compute(progress)
        progress.finish(lambda: state.store_analysis(key, found))
    return found


def show_chart(where, figure, key: str, note: str | None = None) -> None:
    """A chart, or where it would say nothing (flat, empty), the `note` in words instead."""
    if note:
        where.info(note)
    else:
        where.plotly_chart(figure() if callable(figure) else figure, width="stretch", key=key)


def metric_row(items) -> None:
    """Numbers side by side, one metric each: (label, value, glossary term or None for no help text)."""
    from engine import glossary

    for column, (label, value, term) in zip(st.columns(len(items)), items):
        column.metric(label, value, help=glossary.help_text(term) if term else None)


def headline(record: dict) -> dict:
    """A result's headline (attack, top-1 before → after, verdict) as one subheading; returns its words."""
    from engine import report

    words = report.headline(record)
    with st.container(key="headline"):  # one line at 1280 px (app.main's CSS sizes it)
        st.subheader(f"{words['title']} — {words['verdict']}")
    return words


def cached(key, compute, spinner: str | None = None, asked: bool = True):
    """The result stored under `key`; when none is and it is `asked` for, `compute()` (under a spinner saying
    `spinner`), stored."""
    found = state.analysis(key)
    if found is None and asked:
        if spinner:
            with st.spinner(spinner):
                found = compute()
        else:
            found = compute()
        state.store_analysis(key, found)
    return found


def count_input(where, label: str, model_name: str, source: str, cap: int | None, default: int, key: str, **kw) -> int:
    """How many evaluation images to use: at most `cap` (None: no cap) and what the image set holds, starting at
    `default`."""
    most = resources.evaluation_capacity(model_name, source)
    most = most if cap is None else min(cap, most)
    return int(where.number_input(label, 1, most, min(default, most), key=key, **kw))


def start_values(starts: dict) -> None:
    """Set each widget key in `starts` (key → (value, fresh)) to its value when `fresh`, or when Streamlit has
    forgotten it (it does when a run on another page left the widget out)."""
    for key, (value, fresh) in starts.items():
        if fresh or key not in st.session_state:
            st.session_state[key] = value


def explain(concept: str) -> None:
    """In presentation mode, the concept's explanation (app.text.EXPLAIN) above its section."""
    from app.text import EXPLAIN

    if st.session_state.get("presentation"):
        st.info(EXPLAIN[concept])


def download_row(files) -> None:
    """Download buttons side by side, one per (label, data, file name, MIME type)."""
    for column, (label, data, name, mime) in zip(st.columns(len(files)), files):
        column.download_button(label, data, name, mime)


def what_it_shows(said: str | None, where=st) -> None:
    """A result's one-sentence reading under a bold "What it shows:", where there is one."""
    if said:
        where.markdown(f"**What it shows:** {said}")


def image_grid(items, columns: int, width: int) -> None:
    """(picture, caption) pairs in rows of `columns`, each picture enlarged to `width` px."""
    cols = st.columns(columns)
    for i, (picture, caption) in enumerate(items):
        cols[i % columns].image(images.enlarged(picture, width), width=width, caption=caption)
