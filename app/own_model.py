"""Bring your own model: one uploader for any model file, what the file says about itself, and a form prefilled
from it (then from an optional sidecar JSON) for what it does not say.

Nothing uploaded is unpickled and no code is imported from a browser: the engine reads each format safely, and
entry points (package.module:factory) are for the command line only.
"""

from __future__ import annotations

import json
import logging

import streamlit as st

from app import resources, state

LOG = logging.getLogger("perturbation_explorer")

TYPES = ["pt", "pth", "pt2", "ts", "torchscript", "jit", "onnx", "safetensors", "bin", "zip"]
FILE_OWN = "the file's own"  # the architecture choice of a file that holds its network
# Files that hold their network; the rest are weights that need an architecture.
SELF_DESCRIBING = ("onnx", "export", "torchscript", "hf")
WEIGHTS = ("torchvision", "state_dict", "safetensors")
KIND_WORDS = {
    "onnx": "ONNX graph",
    "export": "torch.export program",
    "torchscript": "TorchScript archive",
    "hf": "Hugging Face folder",
}

_ADDED = "own_model_added"  # the note about the last model added (kept until the next one)
_ADDED_WHILE = "own_model_added_while"  # (the white-box model then, the digest of the file added)
_TOAST = "own_model_toast"  # the note's headline, shown once on the rerun after adding
_DESCRIBED = "own_described"  # digest → what formats.describe said (or its refusal), this session
_PREFILLED = "own_prefilled"  # (file digest, sidecar digest) the form fields were last filled from
FIELDS = ("own_arch", "own_timm", "own_size", "own_mean", "own_std", "own_names", "own_domain", "own_name")


def own_model_ui() -> None:
    """The sidebar's "Bring your own model" section (drawn by widgets.model_ui)."""
    # The note stays until the next model is added, and the section stays open until another white-box model is
    # picked: a rerun that comes at once (a click, a stopped job) must neither take the note away nor fold it out
    # of sight before it is read. A file chosen but not yet added keeps it open too.
    upload = st.session_state.get("own_file")
    white, added_file = st.session_state.get(_ADDED_WHILE, (None, None))
    pending = upload is not None and resources.digest(upload.getvalue()) != added_file
    opened = pending or (_ADDED in st.session_state and st.session_state.get("model") == white)
    if _TOAST in st.session_state:
        st.toast(st.session_state.pop(_TOAST), icon=":material/check_circle:")
    with st.sidebar.expander("Bring your own model", expanded=opened):
        # Below the form, where "Add model" was pressed: at the top it would be out of sight on a short screen.
        if _section() and _ADDED in st.session_state:
            st.success(st.session_state[_ADDED])


def _section() -> bool:
    """Uploaders, what the file is, the form; False once it has shown an error."""
    from engine.models import formats

    upload = st.file_uploader(
        "Model file",
        type=TYPES,
        key="own_file",
        help="TorchScript, torch.export (.pt2), ONNX, a Hugging Face folder zipped, or "
        "weights (.pth, .safetensors) of a torchvision or timm architecture",
    )
    sidecar = st.file_uploader(
        "Sidecar JSON (optional)",
        type=["json"],
        key="own_sidecar",
        help="input_size, mean, std, class_names, domain, …: fills the form below",
    )
    if upload is None:
        st.session_state.pop(_PREFILLED, None)  # a form not drawn loses its fields: the next file fills them again
        st.caption(
            "What the file does not say (input size, normalisation, class names) you give in a form once it is chosen."
        )
        return True
    try:
        described = _described(upload.getvalue(), upload.name)
        extra = _sidecar_fields(sidecar) if sidecar is not None else {}
    except (formats.BadModelFile, ValueError) as err:
        st.session_state.pop(_PREFILLED, None)
        st.error(str(err))
        return False
    st.caption(summary(described))
    _prefill(upload, sidecar, {**described, **extra})
    required = required_fields(described, extra)
    values = _form(described["kind"], required)
    return values is None or _add(upload, described, extra, values, required)


def summary(described: dict) -> str:
    """What a file is, in a line: "ONNX graph, input 3×32×32, 10 classes named"."""
    kind = described["kind"]
    what = {
        **KIND_WORDS,
        "hf": f"Hugging Face {described.get('arch', 'image-classification')} folder",
        "torchvision": f"weights that fit torchvision {described.get('arch')}",
        "state_dict": "weights (a state_dict) that fit no torchvision architecture: a timm one?",
        "safetensors": "weights (safetensors) that fit no torchvision architecture: a timm one?",
    }[kind]
    parts = [what]
    if described.get("input_size") and kind not in WEIGHTS:
        parts.append("input " + "×".join(str(v) for v in described["input_size"]))
    names = described.get("class_names")
    if names:
        count = names if isinstance(names, int) else len(names)
        parts.append(f"{count} classes" + (" named" if isinstance(names, list) else ""))
    text = ", ".join(parts)
    if kind == "torchscript":
        text += "; it says nothing about its input or classes"
    return f"**The file:** {text}."


def required_fields(described: dict, extra: dict) -> list[str]:
    """The form fields the user must fill: what the loader needs and neither the file nor the sidecar says.
    Weights take theirs from the architecture they are loaded into."""
    known = {**described, **extra}
    if described["kind"] in WEIGHTS:
        return ["own_arch"] if described["kind"] != "torchvision" else []
    return [
        key
        for key, field in (("own_size", "input_size"), ("own_mean", "mean"), ("own_std", "std"))
        if not known.get(field)
    ]


_LABELS = {"own_arch": "architecture", "own_size": "input size", "own_mean": "mean", "own_std": "std"}
_EXAMPLES = {"own_size": "e.g. 3,32,32", "own_mean": "e.g. 0.5,0.5,0.5", "own_std": "e.g. 0.25,0.25,0.25"}


def _described(data: bytes, filename: str) -> dict:
    """formats.describe once per file and session; a refusal is remembered (and raised) too."""
    from engine.models import formats

    cache = st.session_state.setdefault(_DESCRIBED, {})
    digest = resources.digest(data)
    if digest not in cache:
        try:
            cache[digest] = formats.describe(data, filename=filename)
        except formats.BadModelFile as err:
            cache[digest] = err
        while len(cache) > 8:
            cache.pop(next(iter(cache)))
    found = cache[digest]
    if isinstance(found, Exception):
        raise found
    return found


def _prefill(upload, sidecar, known: dict) -> None:
    """Fill the form from a newly chosen file (and sidecar); later reruns keep what the user typed."""
    key = (resources.digest(upload.getvalue()), None if sidecar is None else resources.digest(sidecar.getvalue()))
    if st.session_state.get(_PREFILLED) == key:
        return
    st.session_state[_PREFILLED] = key
    kind = known["kind"]

    def listed(field: str) -> str:
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in known.get(field) or [])

    names = known.get("class_names")
    st.session_state.update(
        {
            # Weights that fit no torchvision architecture leave it unchosen: the user names theirs.
            "own_arch": FILE_OWN if kind in SELF_DESCRIBING else known.get("arch") if kind == "torchvision" else None,
            "own_timm": "",
            "own_size": listed("input_size"),
            "own_mean": listed("mean"),
            "own_std": listed("std"),
            "own_names": "\n".join(names) if isinstance(names, list) else "",
            "own_domain": known.get("domain") or "",
            "own_name": known.get("name") or upload.name.rsplit(".", 1)[0],
        }
    )


def _form(kind: str, required: list[str]) -> dict | None:
    """The form's values once "Add model" is pressed, else None."""
    from engine.models.formats.torchvision import ARCHITECTURES

    def placeholder(key: str) -> str:
        return "required" if key in required else "optional"

    if required:
        st.caption(
            "Required: "
            + ", ".join(f"{_LABELS[k]} ({_EXAMPLES[k]})" if k in _EXAMPLES else _LABELS[k] for k in required)
            + ". The rest is optional."
        )
    with st.form("own-model"):
        st.selectbox(
            "Architecture",
            [FILE_OWN, *ARCHITECTURES],
            key="own_arch",
            placeholder="choose one (required)",
            help="weights need the torchvision architecture they were trained in; TorchScript, .pt2, "
            "ONNX and Hugging Face files hold their network",
        )
        if kind in WEIGHTS:
            st.text_input(
                "…or a timm architecture",
                key="own_timm",
                placeholder="e.g. resnet10t",
                help="a timm model name: used instead of the torchvision architecture above",
            )
        st.text_input("Input size C,H,W", key="own_size", placeholder=placeholder("own_size"))
        st.text_input("Mean per channel", key="own_mean", placeholder=placeholder("own_mean"))
        st.text_input("Std per channel", key="own_std", placeholder=placeholder("own_std"))
        st.text_area(
            "Class names, one per line",
            key="own_names",
            height=90,
            placeholder="optional: 'class 0', 'class 1', … in output order",
        )
        st.text_input(
            "Domain",
            key="own_domain",
            placeholder="optional",
            help="your domain's name; models with the same classes share it (a black box must). Empty: "
            "the domain of a model you added with the same classes, else the model's name",
        )
        st.text_input("Name", key="own_name", help="how the model lists under White-box and Black-box models")
        added = st.form_submit_button("Add model", type="primary")
    if not added:
        return None
    return {k: st.session_state.get(k) for k in FIELDS}


def _add(upload, described: dict, extra: dict, values: dict, required: list[str]) -> bool:
    """Load the model the form describes; False after saying why it cannot be (else the rerun shows it added)."""
    from engine.models import ModelUnavailable, formats

    try:
        meta = {**{k: v for k, v in extra.items() if k != "name"}, **form_fields(values)}
        missing = [_LABELS[k] for k in required if k != "own_arch" and not values.get(k)]
        if missing:
            raise ValueError(
                f"{upload.name} does not say its {', '.join(missing)}: fill "
                f"{'them' if len(missing) > 1 else 'it'} in above"
            )
        arch = architecture(values, described["kind"])
        if arch and described["kind"] in SELF_DESCRIBING:
            raise ValueError(
                f"{upload.name} is a {KIND_WORDS[described['kind']]}, which holds its own network: "
                f"set Architecture to “{FILE_OWN}”"
            )
        name = unique_name((values.get("own_name") or "").strip() or extra.get("name") or upload.name)
        with st.spinner(f"Loading {name}…"):
            model = formats.load(upload.getvalue(), filename=upload.name, meta=meta, arch=arch, name=name)
    except (ModelUnavailable, ValueError) as err:
        st.error(str(err))
        return False
    except Exception as err:  # noqa: BLE001 - a loader's bug must not take the app down; its trace goes to the log
        LOG.exception("loading %s failed", upload.name)
        st.error(f"{upload.name} could not be loaded ({type(err).__name__}); the server log has the details.")
        return False
    state.own_models()[name] = model
    shown = ", ".join(model.class_names[:3]) + (", …" if len(model.class_names) > 3 else "")
    st.session_state[_ADDED] = (
        f"Added **{name}**: {len(model.class_names)} classes ({shown}), domain "
        f"*{model.domain}*. Pick it as the white-box model; upload labelled images under "
        "*Evaluation images* to use every page."
    )
    st.session_state[_ADDED_WHILE] = (st.session_state.get("model"), resources.digest(upload.getvalue()))
    st.session_state[_TOAST] = f"Added {name}"
    st.rerun()  # the model lists above were drawn before it existed


def form_fields(values: dict) -> dict:
    """The metadata the form gives; a blank field gives nothing (the file's own, else the loader's default)."""

    def numbers(key: str, what: str, kind=float) -> list | None:
        text = (values.get(key) or "").replace(" ", "")
        if not text:
            return None
        try:
            return [kind(v) for v in text.split(",") if v]
        except ValueError:
            raise ValueError(f"{what}: write numbers separated by commas, got {text[:40]!r}") from None

    fields = {
        "input_size": numbers("own_size", "Input size", int),
        "mean": numbers("own_mean", "Mean"),
        "std": numbers("own_std", "Std"),
    }
    fields = {k: v for k, v in fields.items() if v}
    lines = [line.strip() for line in (values.get("own_names") or "").splitlines() if line.strip()]
    if lines:
        fields["class_names"] = lines
    if (values.get("own_domain") or "").strip():
        fields["domain"] = values["own_domain"].strip()
    return fields


def architecture(values: dict, kind: str) -> str | None:
    """The `arch` for formats.load: a timm name first, else the torchvision choice; None for the file's own."""
    timm_name = (values.get("own_timm") or "").strip() if kind in WEIGHTS else ""
    if timm_name:
        return timm_name if timm_name.startswith("timm:") else f"timm:{timm_name}"
    chosen = values.get("own_arch")
    return None if chosen in (None, FILE_OWN) else chosen


def unique_name(wanted: str) -> str:
    """`wanted`, or "wanted (2)", … where a registry model or one of this session's has that name."""
    wanted = wanted[:40]
    taken = set(state.own_models()) | {r["name"] for r in resources.model_rows()}
    name, k = wanted, 1
    while name in taken:
        k += 1
        name = f"{wanted} ({k})"
    return name


def _sidecar_fields(upload) -> dict:
    from engine.models import formats

    try:
        meta = json.loads(upload.getvalue().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{upload.name} is not a JSON file; save the metadata as a JSON object") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{upload.name} must hold a JSON object of metadata, not a {type(meta).__name__}")
    return formats.check_meta(meta, where=f"sidecar {upload.name}")
