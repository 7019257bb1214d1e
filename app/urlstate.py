"""The view in the URL (st.query_params): a link reproduces model, image, attack and parameters.

Every value is checked against the known names and declared ranges; anything
else is dropped with a note. A URL can name a gallery photo or a Fashion-MNIST
test index, never a file path or an upload.
"""

from __future__ import annotations

from engine import attacks, domains

PARAM_PREFIX = "p."
KEYS = ("model", "image", "attack", "seed", "target", "blacks", "view", "present", "slide")
CLASSROOM_KEYS = ("room", "me", "host")  # a classroom's student and teacher links (app/classroom_*.py)
# The Explorer's perturbation views (as the URL names them → as the page labels them), and presentation
# mode's slides (the URL numbers them from 1).
VIEWS = {"signed": "signed δ", "amplified": "amplified |δ|", "display": "display-normalised"}
VIEW_KINDS = {label: kind for kind, label in VIEWS.items()}  # as the page labels them → the panel's kind
SLIDES = ("1 · Attack", "2 · Perturbation", "3 · Where it looks", "4 · Frequencies", "5 · Other models")


def parse(query: dict[str, str], usable_models: dict[str, str]) -> tuple[dict, list[str]]:
    """`usable_models` maps model name → domain. Returns (valid values, problems in plain words)."""
    values: dict = {}
    problems: list[str] = []
    for key in query:
        if key not in KEYS + CLASSROOM_KEYS and not key.startswith(PARAM_PREFIX):
            problems.append(f"unknown URL parameter {key!r} ignored")
    model = query.get("model")
    if model is not None:
        if model in usable_models:
            values["model"] = model
        else:
            problems.append(f"model {model!r} is not available here")
    domain = usable_models.get(values.get("model", ""), None)
    image = query.get("image")
    if image is not None:
        if domains.owner(image) is not None:
            values["image"] = domains.canonical(image)
        else:
            problems.append(f"image {image[:40]!r} is neither a gallery photo nor a numbered test image (fmnist:17)")
    attack = query.get("attack")
    if attack is not None:
        if attack in attacks.ATTACKS:
            values["attack"] = attack
            params = {}
            for p in attacks.get(attack).params:
                raw = query.get(PARAM_PREFIX + p.name)
                if raw is None:
                    continue
                try:
                    params[p.name] = p.check(raw)
                except ValueError as err:
                    problems.append(str(err))
            values["params"] = params
        else:
            problems.append(f"unknown attack {attack!r}")
    for key, low, high in (("seed", 0, 2**31 - 1), ("target", 0, 999), ("slide", 1, len(SLIDES))):
        raw = query.get(key)
        if raw is None:
            continue
        if raw.isdigit() and low <= int(raw) <= high:
            values[key] = int(raw)
        else:
            problems.append(f"{key} must be a whole number in [{low}, {high}], got {raw[:20]!r}")
    for key, allowed in (("view", VIEWS), ("present", ("0", "1"))):
        raw = query.get(key)
        if raw is None:
            continue
        if raw in allowed:
            values[key] = raw
        else:
            problems.append(f"{key} must be one of {', '.join(allowed)}, got {raw[:20]!r}")
    blacks = query.get("blacks")
    if blacks:
        chosen = [
            b
            for b in blacks.split(",")
            if b in usable_models and usable_models[b] == domain and b != values.get("model")
        ]
        dropped = [b for b in blacks.split(",") if b not in chosen]
        if dropped:
            problems.append(f"black-box models not usable with this model: {', '.join(d[:30] for d in dropped)}")
        values["blacks"] = chosen
    if "image" in values and domain is not None:
        if domains.owner(values["image"]).name != domain:
            problems.append(f"image {values['image']!r} does not fit a {domain} model")
            values.pop("image")
    return values, problems


def encode(
    model: str,
    image_key: str,
    run,
    blacks: list[str],
    view: str | None = None,
    present: bool = False,
    slide: int | None = None,
) -> dict[str, str]:
    """The query parameters of a view (uploads are not linkable: the image is left out)."""
    out = {"model": model}
    if view is not None:
        out["view"] = view
    if present:
        out["present"] = "1"
        if slide is not None:
            out["slide"] = str(slide)
    if not image_key.startswith("upload:"):
        out["image"] = image_key
    if run is not None:
        out["attack"] = run.attack
        out["seed"] = str(run.seed)
        if run.target is not None:
            out["target"] = str(run.target)
        for name, value in run.params:
            out[PARAM_PREFIX + name] = str(value)
    if blacks:
        out["blacks"] = ",".join(blacks)
    return out
