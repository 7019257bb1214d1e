"""Human-recognisable perturbations: the thesis' evaluations (SPEC §3; seed 002 §4.6–§5).

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

from typing import Sequence

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


def dataset_stats(domain: "str | domains.Domain", device=None) -> tuple[torch.Tensor, torch.Tensor]:
    return domains.stats(domain, device)


def sign_quantise(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """δ' = ε·sign(δ) (Eq 4.3): every perturbation at the same L∞ size, so strengths compare."""
    return eps * delta.sign()


def random_signs(like: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """±ε with random signs: the control a quantised perturbation must beat."""
    generator = torch.Generator(device=like.device).manual_seed(seed)
    flips = torch.rand(like.shape, generator=generator, device=like.device) < 0.5
    return torch.where(flips, -eps, eps).to(like.dtype)


def display_normalise(delta: torch.Tensor, domain: "str | domains.Domain", targeted: bool = False, peak: float | None = None) -> torch.Tensor:
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
    """δ with every pixel whose |δ| is below the image's mean |δ| set to zero (SPEC §3)."""
    mag = delta.abs()
    mean = mag.flatten(1).mean(1).view(-1, *([1] * (delta.dim() - 1)))
    return torch.where(mag >= mean, delta, torch.zeros_like(delta))


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image, the cosine of the angle between two perturbations."""
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def perturbations(
    sources: Sequence, x: torch.Tensor, y: torch.Tensor | None, attacks: dict[str, dict], *,
    single=None, copies: int, sigma: float, settings: Sequence[str] = SETTINGS, target=None, seed: int = 0,
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
        result = averaged(name, models, x, y=y, target=target, copies=n, sigma=s, seed=seed,
                          callback=progress.part(callback, i, len(parts), attack=name, setting=setting), **params)
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
    tests: Sequence, x: torch.Tensor, y: torch.Tensor, deltas: dict[tuple[str, str], torch.Tensor], eps: float, seed: int = 0,
) -> list[dict]:
    """Table 4.4's shape: test-model accuracy on clean images, ±ε random noise, and x + ε·sign(δ) per (attack, setting).

    Inputs are clipped to [0, 1] here: the evaluated image is a real image, only generation is unclipped.
    """
    rows = accuracy_rows(tests, x, y, attack="—", setting="clean")
    rows += accuracy_rows(tests, (x + random_signs(x, eps, seed)).clamp(0, 1), y, attack="—", setting="random ±ε")
    for (attack, setting), delta in deltas.items():
        rows += accuracy_rows(tests, (x + sign_quantise(delta, eps)).clamp(0, 1), y, attack=attack, setting=setting)
    return rows


def verdicts(tests: Sequence, deltas: dict[tuple[str, str], torch.Tensor], domain: str,
             targeted: bool = False) -> dict[tuple[str, str, str], torch.Tensor]:
    """What each test model calls each display-normalised perturbation: (attack, setting, model) → N labels."""
    out = {}
    for (attack, setting), delta in deltas.items():
        shown = display_normalise(delta, domain, targeted)
        for m in tests:
            out[(attack, setting, m.name)] = predict_labels(m, shown)
    return out


def recognisability_table(
    tests: Sequence, y: torch.Tensor, deltas: dict[tuple[str, str], torch.Tensor], domain: str, targeted: bool = False,
) -> list[dict]:
    """Table 4.3's shape: the share of display-normalised perturbations that test models classify as the source class."""
    return [{"attack": attack, "setting": setting, "model": model, "source class share": _share(pred, y)}
            for (attack, setting, model), pred in verdicts(tests, deltas, domain, targeted).items()]


def target_recognisability_table(
    tests: Sequence, y: torch.Tensor, target: torch.Tensor, deltas: dict[tuple[str, str], torch.Tensor], domain: str,
) -> list[dict]:
    """The generation effect (seed 002 §4.8.5) in numbers: targeted perturbations, scaled so that their
    largest value is the domain's display peak, shown to test models on their own. The share they classify
    as the *target* class (the perturbation drew the target's features), for contrast as the source, and
    the class they name most often."""
    return [{"attack": attack, "setting": setting, "model": model,
             "target class share": _share(pred, target), "source class share": _share(pred, y),
             "most common class": int(torch.bincount(pred).argmax())}
            for (attack, setting, model), pred in verdicts(tests, deltas, domain, targeted=True).items()]


def _share(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels.to(pred.device)).float().mean())


def similarity_table(deltas: dict[tuple[str, str], torch.Tensor]) -> list[dict]:
    """Mean cosine similarity between every two attacks' perturbations of the same images, per setting."""
    rows = []
    settings = sorted({s for _, s in deltas}, key=lambda s: SETTINGS.index(s) if s in SETTINGS else len(SETTINGS))
    for setting in settings:
        names = [a for a, s in deltas if s == setting]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                cos = cosine_similarity(deltas[(a, setting)], deltas[(b, setting)])
                rows.append({"setting": setting, "a": a, "b": b, "cosine": float(cos.mean()),
                             "cosine min": float(cos.min()), "cosine max": float(cos.max())})
    return rows


def noise_images(domain: str, shape: tuple[int, int, int], count: int, seed: int = 0, device=None,
                 stats: tuple[Sequence[float], Sequence[float]] | None = None) -> torch.Tensor:
    """Isotropic Gaussian noise with the domain's (or `stats`') per-channel mean and std, clipped to [0, 1]."""
    if stats is None:
        mean, std = dataset_stats(domain, device)
    else:
        mean, std = (torch.tensor(v, device=device, dtype=torch.float32).view(1, -1, 1, 1) for v in stats)
    generator = torch.Generator(device=device or "cpu").manual_seed(seed)
    z = torch.randn((count, *shape), generator=generator, device=device)
    return (z * std + mean).clamp(0.0, 1.0)


def noise_classes(models: Sequence, count: int = 256, seed: int = 0, top: int = 5, stats=None) -> list[dict]:
    """SPEC §3 "noise classes": which classes each model sees in pure dataset-statistics noise.

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
            rows.append({"model": m.name, "rank": rank + 1, "class": c, "name": m.class_names[c],
                         "share": float(counts[c]) / count})
    return rows
