"""Entry point: `streamlit run app/main.py`. Page config, URL state, shared sidebar, navigation."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/main.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import logging  # noqa: E402
import traceback  # noqa: E402

import streamlit as st  # noqa: E402

from app import classroom_section, classroom_student, jobs, resources, state, urlstate, widgets  # noqa: E402
from engine import domains, targets  # noqa: E402

LOG = logging.getLogger("perturbation_explorer")

# Page files under app/views/ (not app/pages/, which would switch Streamlit to its legacy multipage mode).
PAGES = [
    ("views/explorer.py", "Explorer", ":material/biotech:", "explorer"),
    ("views/transfer.py", "Transfer lab", ":material/swap_horiz:", "transfer"),
    ("views/features.py", "Feature space", ":material/scatter_plot:", "features"),
    ("views/anatomy.py", "Anatomy of a perturbation", ":material/layers:", "anatomy"),
    ("views/patch.py", "Patch distance", ":material/filter_center_focus:", "patch"),
    ("views/jsma.py", "JSMA lab", ":material/grid_on:", "jsma"),
    ("views/quiz.py", "Perturbation quiz", ":material/quiz:", "quiz"),
    ("views/sweeps.py", "Sweep results", ":material/table_chart:", "sweeps"),
    ("views/guide.py", "Method guide", ":material/menu_book:", "guide"),
]


def apply_url() -> None:
    """On a session's first run, turn valid query parameters into widget state (before any widget exists)."""
    if not state.url_pending():
        return
    values, problems = urlstate.parse(dict(st.query_params), widgets.usable_models())
    st.session_state["url_problems"] = problems
    if "model" in values:
        st.session_state["model"] = values["model"]
    model = values.get("model", widgets.DEFAULT_MODEL)
    # The widget keys of attack parameters carry the domain (its defaults differ); an unusable model: the default's.
    domain = widgets.model_domain(model if model in widgets.usable_models() else widgets.DEFAULT_MODEL)
    image = values.get("image")
    owner = None if image is None else domains.owner(image)
    if owner is not None and owner.indexed:
        index = owner.parse_key(image)
        for cls, members in resources.class_members(owner).items():
            if index in members:
                st.session_state["fmnist_class"], st.session_state["fmnist_example"] = cls, members.index(index)
    elif image is not None:
        st.session_state["image_source"], st.session_state["gallery_image"] = "Gallery", image
    if "blacks" in values:
        st.session_state["blacks"] = values["blacks"]
    if "view" in values:
        st.session_state["delta_view"] = urlstate.VIEWS[values["view"]]
    if values.get("present") == "1":
        st.session_state["presentation"] = True
    if "slide" in values:
        st.session_state["slide"] = urlstate.SLIDES[values["slide"] - 1]
    attack = values.get("attack")
    if attack is not None:
        st.session_state["attack"] = attack
        for name, value in values.get("params", {}).items():
            st.session_state[f"{domain}.{attack}.{name}"] = value
        if "seed" in values:
            st.session_state[f"{attack}.seed"] = values["seed"]
        if "target" in values:
            st.session_state[f"{attack}.target"] = values["target"]
        st.session_state["url_run"] = (
            attack,
            tuple(sorted(values.get("params", {}).items())),
            values.get("target"),
            values.get("seed", 0),
        )


# Streamlit's default top padding (6rem) pushes a result's pictures below a 720-px screen's fold; 4rem still
# clears the app header. A headline fits one line beside the sidebar at 1280 px.
CSS = """<style>
.stMainBlockContainer {padding-top: 4rem;}
.stMainBlockContainer h1 {padding-top: 0.25rem;}
.st-key-headline h3 {font-size: 1.45rem;}
</style>"""


def _pages(position: str = "sidebar"):
    return st.navigation(
        [
            st.Page(file, title=title, icon=icon, url_path=path, default=(path == "explorer"))
            for file, title, icon, path in PAGES
        ],
        position=position,
    )


def run() -> None:
    # A projector link, or switching the deck on, folds the sidebar away: the slide gets the whole screen. So does
    # a classroom link, the teacher's (the projector) and a student's (a phone).
    room = st.query_params.get("room")
    presenting = st.session_state.get("presentation", st.query_params.get("present") == "1")
    presenting = presenting or room is not None or classroom_section.hosting()
    # A local file: an icon name would make the browser fetch it from a font host (nothing is fetched offline).
    st.set_page_config(
        page_title="Perturbation Explorer",
        page_icon=str(ROOT / "assets" / "icon.png"),
        layout="wide",
        initial_sidebar_state="collapsed" if presenting else "auto",
    )
    st.html(CSS)
    if room is not None:  # a student: the room's question alone, none of the lab's sidebar, models or pages
        _pages("hidden")
        classroom_student.page(room)
        return
    resources.check_models()
    apply_url()
    st.sidebar.title("Perturbation Explorer")
    st.sidebar.toggle(
        "Presentation mode",
        key="presentation",
        help="large figures, one concept per screen, with a short explanation of each",
    )
    for problem in st.session_state.get("url_problems", []):
        st.sidebar.warning(f"Link: {problem}")
    model = widgets.model_ui()
    # A user's model picks its pictures from the images it came with: the image set is chosen first, drawn below.
    image_box, blacks_box = st.sidebar.container(), st.sidebar.container()
    source = widgets.data_ui(model)
    state.set_evaluation_source(source)
    resources.attach_images(model, source)
    with image_box:
        st.session_state["selection"] = widgets.image_ui(model)
    with blacks_box:
        st.session_state["blacks_chosen"] = widgets.blacks_ui(model)
    # Every rerun goes through this entry point and its sidebar, then runs the chosen page file.
    page = _pages()
    if page.url_path not in ("", "explorer"):  # the lab pages keep the shared part of the view in the link too
        view = urlstate.encode(
            model,
            st.session_state["selection"].image_key,
            None,
            st.session_state["blacks_chosen"],
            present=bool(st.session_state.get("presentation")),
        )
        # The teacher's room key stays: a reload or a server restart comes back to the room.
        kept = {k: st.query_params[k] for k in urlstate.CLASSROOM_KEYS if k in st.query_params}
        st.query_params.from_dict({**view, **kept})
    # Streamlit's own stop and rerun are BaseExceptions, not Exceptions: they pass every clause below untouched.
    try:
        page.run()
    except domains.NeedsImages:  # a user's model before its images: what to do, in the app's own terms
        jobs.clear_unfinished()
        st.info(widgets.needs_images_text(page.title))
    except targets.NoTargetClass as err:  # a model that gets one class right leaves AA no target class
        jobs.clear_unfinished()
        st.info(widgets.no_target_text(err))
    except Exception as err:  # the one error boundary: a plain message on the page, the trace in the server log
        LOG.exception("page %s failed", page.url_path)
        jobs.clear_unfinished()
        st.error(
            f"This page could not finish: {err}"
            if isinstance(err, ValueError)
            else f"Something went wrong on this page ({type(err).__name__}). The rest of the app still works; "
            "the details below and the server log say what happened."
        )
        with st.expander("Details"):
            st.code("".join(traceback.format_exception(err)), language=None)
    finally:
        jobs.release_unfinished()


run()
