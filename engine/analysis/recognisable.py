"""Human-recognisable perturbations: the thesis' evaluations (Menn 2023, §4.6–§5).

Perturbations come from `engine.attacks.averaging.averaged` in three settings
(single model; multi-model, σ = 0; noisy multi-model) and are judged by held-out
*test* models that never produced them:

- attack strength (Table 4.4): accuracy on x + ε·sign(δ), next to clean and ±ε random noise;
- machine recognisability (Table 4.3): the display-normalised δ itself, classified as the source class?
  Targeted δ (the generation effect, §4.8.5): classified as the target class?
- similarity across attacks, complementarity, and the "noise classes" of each model.

Every evaluation returns a tidy list of dicts (one row per number) so the CLI
prints it as JSON and the app/experiments turn it into tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine import domains, progress
from engine.attacks.averaging import averaged
from engine.metrics import predict_labels

SETTINGS = ("single-model", "multi-model", "noisy multi-model")


def consensus_labels(models: Sequence, x: torch.Tensor) -> torch.Tensor:
    """The class the models agree on: the argmax of their summed softmax. Photos carry no label, so the
    sources and judges' consensus stands in for one."""
    with torch.no_grad():
        return sum(torch.softmax(m(x), 1) for m in models).argmax(1)


def dataset_stats(domain: str | domains.Domain, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    return domains.stats(domain, device)


def sign_quantise(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """δ' = ε·sign(δ) (Eq 4.3): every perturbation at the same L∞ size, so strengths compare."""
    return eps * delta.sign()


def random_signs(like: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """±ε with random signs: the control a quantised perturbation must beat."""
    generator = torch.Generator(device=like.device).manual_seed(seed)
    flips = torch.rand(like.shape, generator=generator, device=like.device) < 0.5
    return torch.where(flips, -eps, eps).to(like.dtype)


def display_normalise(
    delta: torch.Tensor, domain: str | domains.Domain, targeted: bool = False, peak: float | None = None
) -> torch.Tensor:
    """The thesis' way of showing δ as an image (§4.6.6), in [0, 1].

    Untargeted: ×(−1) (the masking effect subtracts the object), then each channel
    linearly matched to the dataset's mean and std. Targeted: scaled so that the
    largest value is `peak` (1 on Fashion-MNIST, 0.5 on ImageNet).
    """
    mean, std = dataset_stats(domain, delta.device)
    dims = tuple(range(2, delta.dim()))
    if targeted:
        record = domain if isinstance(domain, domains.Domain) else domains.get(domain)
        peak = record.averaging.get("peak", 1.0) if peak is None else peak
        top = delta.flatten(1).amax(1).view(-1, *([1] * (delta.dim() - 1)))
        shown = delta * peak / torch.where(top > 0, top, torch.ones_like(top))
    else:
        d = -delta
        mu = d.mean(dim=dims, keepdim=True)
        sd = d.std(dim=dims, keepdim=True)
        shown = (d - mu) / torch.where(sd > 0, sd, torch.ones_like(sd)) * std + mean
    return shown.clamp(0.0, 1.0)


def complementarity(delta: torch.Tensor) -> torch.Tensor:
    """δ with every pixel whose |δ| is below the image's mean |δ| set to zero: what is left shows
    where δ is strong, sometimes all around the object while the object itself stays untouched."""
    mag = delta.abs()
    mean = mag.flatten(1).mean(1).view(-1, *([1] * (delta.dim() - 1)))
    return torch.where(mag >= mean, delta, torch.zeros_like(delta))


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image, the cosine of the angle between two perturbations."""
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def perturbations(
    sources: Sequence,
    x: torch.Tensor,
    y: torch.Tensor | None,
    attacks: dict[str, dict],
    *,
    single=None,
    copies: int,
    sigma: float,
    settings: Sequence[str] = SETTINGS,
    target=None,
    seed: int = 0,
    callback: progress.Callback | None = None,
) -> dict[tuple[str, str], torch.Tensor]:
    """δ for every (attack, setting): `single` (default: the first source) alone, all sources at σ = 0,
    all sources with `copies` Gaussian copies at `sigma`. No clipping, calibrated (§4.7).
    `callback` (engine.progress) runs over every (attack, setting); once cancelled, the δ so far come back
    (the cancelled one averaged over the rows it finished)."""
    single = sources[0] if single is None else single
    runs = {
        "single-model": ([single], 1, 0.0),
        "multi-model": (list(sources), 1, 0.0),
        "noisy multi-model": (list(sources), copies, sigma),
    }
    unknown = [s for s in settings if s not in runs]
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(runs)}")
    out = {}
    parts = [(name, setting) for name in attacks for setting in settings]
    for i, (name, setting) in enumerate(parts):
        params = dict(attacks[name])
        # The thesis tunes the noise per attack (Table 4.2): "copies"/"sigma" in an attack's params override.
        own = (params.pop("copies", copies), params.pop("sigma", sigma))
        models, n, s = runs[setting]
        if setting == "noisy multi-model":
            n, s = own
        result = averaged(
            name,
            models,
            x,
            y=y,
            target=target,
            copies=n,
            sigma=s,
            seed=seed,
            callback=progress.part(callback, i, len(parts), attack=name, setting=setting),
            **params,
        )
        out[(name, setting)] = result.delta
        if result.stopped_early:
            break
    return out


def _accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    return _share(predict_labels(model, x), y)


def accuracy_rows(tests: Sequence, x: torch.Tensor, y: torch.Tensor, **labels) -> list[dict]:
    """One row per test model: its accuracy on `x`, tagged with `labels`."""
    return [{**labels, "model": m.name, "accuracy": _accuracy(m, x, y)} for m in tests]


def strength_table(
    tests: Sequence,
    x: torch.Tensor,
    y: torch.Tensor,
    deltas: dict[tuple[str, str], torch.Tensor],
    eps: float,
    seed: int = 0,
) -> list[dict]:
    """Table 4.4's shape: test-model accuracy on clean images, ±ε random noise, and x + ε·sign(δ) per (attack, setting).

    Inputs are clipped to [0, 1] here: the evaluated image is a real image, only generation is unclipped.
    """
    rows = accuracy_rows(tests, x, y, attack="—", setting="clean")
    rows += accuracy_rows(tests, (x + random_signs(x, eps, seed)).clamp(0, 1), y, attack="—", setting="random ±ε")
    for (attack, setting), delta in deltas.items():
        rows += accuracy_rows(tests, (x + sign_quantise(delta, eps)).clamp(0, 1), y, attack=attack, setting=setting)
    return rows


def choice_sets(y: torch.Tensor, num_classes: int, choices: int | None, seed: int = 0) -> torch.Tensor | None:
    """N×`choices` classes a judge chooses among for each image: its class (column 0) and `choices` − 1 other
    classes drawn with `seed`, as the thesis' judges chose among 20. None (or every class): the judge's own argmax.
    """
    if choices is None or choices >= num_classes:
        return None
    if isinstance(choices, bool) or not isinstance(choices, int) or choices < 2:
        raise ValueError(f"choices must be a whole number ≥ 2 (or all), got {choices!r}")
    rng = np.random.default_rng(seed)
    truth = y.tolist()
    # Drawn among the num_classes − 1 others, then shifted past the true class: each other class equally likely.
    drawn = [[c + (c >= t) for c in rng.choice(num_classes - 1, choices - 1, replace=False).tolist()] for t in truth]
    return torch.tensor([[t, *d] for t, d in zip(truth, drawn)], dtype=torch.long, device=y.device)


def judge(model, x: torch.Tensor, sets: torch.Tensor | None = None, batch: int = 500) -> torch.Tensor:
    """The class `model` names for every image of `x`: its argmax over all classes, or over row i of `sets` only."""
    if sets is None:
        return predict_labels(model, x, batch)
    with torch.no_grad():
        logits = torch.cat([model(x[lo : lo + batch]) for lo in range(0, x.shape[0], batch)])
    sets = sets.to(logits.device)
    return sets.gather(1, logits.gather(1, sets).argmax(1, keepdim=True)).squeeze(1)


def verdicts(
    tests: Sequence,
    deltas: dict[tuple[str, str], torch.Tensor],
    domain: str,
    targeted: bool = False,
    sets: torch.Tensor | None = None,
) -> dict[tuple[str, str, str], torch.Tensor]:
    """What each test model calls each display-normalised perturbation: (attack, setting, model) → N labels,
    chosen among each image's `sets` row when given."""
    out = {}
    for (attack, setting), delta in deltas.items():
        shown = display_normalise(delta, domain, targeted)
        for m in tests:
            out[(attack, setting, m.name)] = judge(m, shown, sets)
    return out


def recognisability_table(
    tests: Sequence,
    y: torch.Tensor,
    deltas: dict[tuple[str, str], torch.Tensor],
    domain: str,
    targeted: bool = False,
    choices: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """Table 4.3's shape: the share of display-normalised perturbations that test models classify as the source
    class, choosing among `choices` classes per image (`choice_sets`; None: all of them)."""
    classes = len(tests[0].class_names) if tests else 0
    sets = choice_sets(y, classes, choices, seed)
    shown = classes if sets is None else sets.shape[1]
    return [
        {"attack": attack, "setting": setting, "model": model, "choices": shown, "source class share": _share(pred, y)}
        for (attack, setting, model), pred in verdicts(tests, deltas, domain, targeted, sets).items()
    ]


def target_recognisability_table(
    tests: Sequence,
    y: torch.Tensor,
    target: torch.Tensor,
    deltas: dict[tuple[str, str], torch.Tensor],
    domain: str,
) -> list[dict]:
    """The generation effect (Menn 2023, §4.8.5) in numbers: targeted perturbations, scaled so that their
    largest value is the domain's display peak, shown to test models on their own. The share they classify
    as the *target* class (the perturbation drew the target's features), for contrast as the source, and
    the class they name most often."""
    return [
        {
            "attack": attack,
            "setting": setting,
            "model": model,
            "target class share": _share(pred, target),
            "source class share": _share(pred, y),
            "most common class": int(torch.bincount(pred).argmax()),
        }
        for (attack, setting, model), pred in verdicts(tests, deltas, domain, targeted=True).items()
    ]


def _share(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels.to(pred.device)).float().mean())


def similarity_table(deltas: dict[tuple[str, str], torch.Tensor]) -> list[dict]:
    """Mean cosine similarity between every two attacks' perturbations of the same images, per setting."""
    rows = []
    settings = sorted({s for _, s in deltas}, key=lambda s: SETTINGS.index(s) if s in SETTINGS else len(SETTINGS))
    for setting in settings:
        names = [a for a, s in deltas if s == setting]
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                cos = cosine_similarity(deltas[(a, setting)], deltas[(b, setting)])
                rows.append(
                    {
                        "setting": setting,
                        "a": a,
                        "b": b,
                        "cosine": float(cos.mean()),
                        "cosine min": float(cos.min()),
                        "cosine max": float(cos.max()),
                    }
                )
    return rows


def noise_images(
    domain: str,
    shape: tuple[int, int, int],
    count: int,
    seed: int = 0,
    device=None,
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> torch.Tensor:
    """Isotropic Gaussian noise with the domain's (or `stats`') per-channel mean and std, clipped to [0, 1]."""
    if stats is None:
        mean, std = dataset_stats(domain, device)
    else:
        mean, std = (torch.tensor(v, device=device, dtype=torch.float32).view(1, -1, 1, 1) for v in stats)
    generator = torch.Generator(device=device or "cpu").manual_seed(seed)
    z = torch.randn((count, *shape), generator=generator, device=device)
    return (z * std + mean).clamp(0.0, 1.0)


def noise_classes(models: Sequence, count: int = 256, seed: int = 0, top: int = 5, stats=None) -> list[dict]:
    """The "noise classes": which classes each model sees in pure dataset-statistics noise.

    One row per (model, class) among the `top` most frequent, with its share of the `count` samples.
    """
    rows = []
    for m in models:
        x = noise_images(m.domain, tuple(m.input_size), count, seed, device=getattr(m, "device", None), stats=stats)
        counts = torch.bincount(predict_labels(m, x), minlength=len(m.class_names))
        order = counts.argsort(descending=True)[:top]
        for rank, c in enumerate(order.tolist()):
            if counts[c] == 0:
                break
            rows.append(
                {
                    "model": m.name,
                    "rank": rank + 1,
                    "class": c,
                    "name": m.class_names[c],
                    "share": float(counts[c]) / count,
                }
            )
    return rows


# ---- the Anatomy page's choices, panels and tables -----------------------------------------------

SIMILARITY_ATTACKS = ("bim", "cw", "deepfool")  # the attacks whose perturbations are compared with each other
# Square joins the averaged attacks as the query-only one: it sees the models' outputs, never their gradients.
AVERAGED_ATTACKS = (*SIMILARITY_ATTACKS, "square")


def attack_params(attack: str, settings: dict) -> dict:
    """The attack's parameters from the page's settings (eps, steps, queries, zero_init)."""
    eps, steps = settings["eps"], settings["steps"]
    if attack == "bim":
        return {"eps": eps, "steps": steps, "alpha": 2 * eps / steps}  # the thesis' α = 2ε/K
    if attack == "square":
        return {"eps": eps, "n_queries": settings["queries"], "zero_init": settings["zero_init"]}
    return {"steps": steps}  # C&W and DeepFool find their own size


def extra_sources(options: Sequence[str], domain_sources: Sequence[str], count: int = 2) -> list[str]:
    """The other source models offered first: the domain's own sources (the judges stay held out), else any."""
    return ([n for n in options if n in domain_sources] or list(options))[:count]


def averaging_seconds(attack: str, sources: Sequence, settings: dict) -> float:
    """Expected time of the three averages (single, multi-model, noisy multi-model) of one image."""
    from engine import cost

    params = attack_params(attack, settings)
    return sum(
        cost.averaged_seconds(attack, models, 1, n, params)
        for models, n in ((sources[:1], 1), (sources, 1), (sources, settings["copies"]))
    )


def similarity_seconds(sources: Sequence, settings: dict) -> float:
    """Expected time of the single and noisy multi-model averages of every compared attack."""
    from engine import cost

    return sum(
        cost.averaged_seconds(a, models, 1, n, attack_params(a, settings))
        for a in SIMILARITY_ATTACKS
        for models, n in ((sources[:1], 1), (sources, settings["copies"]))
    )


def aim(model, x: torch.Tensor, policy: str | int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(source class, target class) of `x` under a target policy or a class name; None where the model already
    puts the image in the target class, so a targeted attack has nothing to do."""
    from engine import targets

    with torch.no_grad():
        y = model(x).argmax(1)
    chosen = policy if policy in targets.POLICIES else model.class_names.index(policy)
    target = targets.choose(model, x, chosen, y=y)
    return None if bool((target == y).any()) else (y, target)


def averages(
    sources: Sequence,
    x: torch.Tensor,
    settings: dict,
    attack: str,
    aimed=None,
    callback: progress.Callback | None = None,
) -> dict[str, torch.Tensor]:
    """setting → δ of `attack` on `x` in every setting; `aimed` = (source, target) for a targeted attack.
    A cancelled run keeps the settings it finished (the cancelled one over the rows it finished)."""
    y, target = aimed if aimed is not None else (None, None)
    deltas = perturbations(
        sources,
        x,
        y,
        {attack: attack_params(attack, settings)},
        target=target,
        copies=settings["copies"],
        sigma=settings["sigma"],
        callback=callback,
    )
    return {setting: delta for (_, setting), delta in deltas.items()}


def generation_verdicts(
    judges: Sequence, aimed: tuple[torch.Tensor, torch.Tensor], deltas: dict[str, torch.Tensor], domain: str
) -> list[dict]:
    """`target_recognisability_table` of the settings' targeted δ (setting → δ), `aimed` = (source, target)."""
    return target_recognisability_table(judges, *aimed, {("", s): d for s, d in deltas.items()}, domain)


def recognition_rows(
    judges: Sequence,
    y: torch.Tensor,
    deltas: dict[str, torch.Tensor],
    domain,
    class_names: Sequence[str],
    choices: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """Untargeted δ (setting → δ of one image), shown alone to each judge choosing among `choices` classes (the
    image's and others drawn with `seed`; None: every class): the class it names and whether that is the image's."""
    sets = choice_sets(y, len(class_names), choices, seed)
    picked = verdicts(judges, {("", s): d for s, d in deltas.items()}, domain, sets=sets)
    among = ", ".join(class_names[c] for c in sets[0].tolist()) if sets is not None else f"all {len(class_names)}"
    return [
        {
            "setting": setting,
            "judge": judge,
            "judged as": class_names[int(pred[0])],
            "the image's class": bool(pred[0] == y[0].to(pred.device)),
            "among": among,
        }
        for (_, setting, judge), pred in picked.items()
    ]


def judged_titles(
    verdict_rows: list[dict] | None, class_names: Sequence[str], settings: Sequence[str]
) -> dict[str, str]:
    """Each setting's panel title with the classes the judges name for its targeted δ (none untargeted)."""
    titles = {}
    for name in settings if verdict_rows is not None else ():
        seen = [class_names[r["most common class"]] for r in verdict_rows if r["setting"] == name]
        titles[name] = f"{name}: judged {', '.join(dict.fromkeys(seen))}"
    return titles


def generation_rows(verdict_rows: list[dict], class_names: Sequence[str]) -> list[dict]:
    """The generation-effect table as shown: the class each judge names, and the target and source shares."""
    return [
        {
            "setting": r["setting"],
            "judge": r["model"],
            "judged as": class_names[r["most common class"]],
            "target class share": f"{r['target class share']:.0%}",
            "source class share": f"{r['source class share']:.0%}",
        }
        for r in verdict_rows
    ]


def average_panels(
    x: torch.Tensor,
    deltas: dict[str, torch.Tensor],
    domain,
    targeted: bool,
    verdict_rows: list[dict] | None = None,
    class_names: Sequence[str] = (),
) -> list[tuple]:
    """(title, picture, kind) panels: the image, each setting's display-normalised δ (titled, where the judges'
    `verdict_rows` of a targeted δ are given, with the classes they name) and, once the noisy multi-model
    average is there, its complementarity map (the pixels where |δ| is at least its mean)."""
    from engine import images

    titles = judged_titles(verdict_rows, class_names, list(deltas))
    pics = [("image", images.to_uint8(x), "rgb")]
    pics += [
        (titles.get(name, name), images.to_uint8(display_normalise(delta, domain, targeted)), "rgb")
        for name, delta in deltas.items()
    ]
    if "noisy multi-model" in deltas:
        pics.append(
            ("complementarity (|δ| ≥ mean)", images.signed_map(complementarity(deltas["noisy multi-model"])), "signed")
        )
    return pics


def similarity_matrices(
    rows: list[dict],
    attacks: Sequence[str] = SIMILARITY_ATTACKS,
    settings: Sequence[str] = ("single-model", "noisy multi-model"),
) -> dict:
    """setting → the symmetric matrix of mean cosine similarities between `attacks` (1 on the diagonal)."""
    out = {}
    for setting in settings:
        m = np.eye(len(attacks))
        for r in rows:
            if r["setting"] == setting:
                a, b = attacks.index(r["a"]), attacks.index(r["b"])
                m[a, b] = m[b, a] = r["cosine"]
        out[setting] = m
    return out


def generation_caption(target_name: str) -> str:
    """What the generation-effect table measures."""
    return (
        f"Target: {target_name}. Each judge classifies the display-normalised targeted δ alone (no image under "
        "it); the thesis sees the target's features drawn in it (a hen's comb grows towards cock)."
    )


def similarity(
    sources: Sequence, x: torch.Tensor, y: torch.Tensor, settings: dict, callback: progress.Callback | None = None
) -> list[dict]:
    """`similarity_table` of the compared attacks' single and noisy multi-model perturbations of `x`."""
    params = {a: attack_params(a, settings) for a in SIMILARITY_ATTACKS}
    return similarity_table(
        perturbations(
            sources,
            x,
            y,
            params,
            copies=settings["copies"],
            sigma=settings["sigma"],
            settings=("single-model", "noisy multi-model"),
            callback=callback,
        )
    )


def source_options(usable: dict[str, str], model, exclude: Sequence[str]) -> list[str]:
    """The models that may join `model` as sources: usable ones of its domain, other than it and `exclude`."""
    return [n for n, dom in usable.items() if dom == model.domain and n != model.name and n not in exclude]


# The anatomy page's progress labels for the similarity and noise-class runs.
SIMILARITY_RUN = "Three attacks, single and noisy multi-model"
NOISE_RUN = "Noise through every model…"
PRESS_AVERAGE = (
    "Press Average: the attack runs on every source model and noisy copy of the image, "
    "then the sections below judge the averaged perturbation."
)


def averaging_settings(copies, sigma, eps, steps, queries, zero_init, target) -> dict:
    """The anatomy form's values as the averaging settings (`target`: None when untargeted)."""
    return {
        "copies": int(copies),
        "sigma": float(sigma),
        "eps": float(eps),
        "steps": int(steps),
        "queries": int(queries),
        "zero_init": bool(zero_init),
        "target": target,
    }


def sources_caption(sources: Sequence, judges: Sequence) -> str:
    """Which models made the averaged perturbation and which judge it."""
    made, judged = ", ".join(m.name for m in sources), ", ".join(j.name for j in judges)
    return f"Sources: {made}. Judges (black-box models): {judged}."
