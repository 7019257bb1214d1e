"""Everything the Explorer shows about one attack result, as plain arrays and numbers.

The app only lays these out; the CLI and tests read the same dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine import attacks, cost, heatmaps, images, progress
from engine.analysis import faithfulness, robust
from engine.analysis.recognisable import display_normalise
from engine.metrics import topk
from engine.report import run_record


def log_spectrum(delta: torch.Tensor) -> np.ndarray:
    """log10 of the channel-mean perturbation's 2-D power spectrum, zero frequency centred (H×W)."""
    d = delta.detach().float()
    if d.dim() == 4:
        d = d[0]
    gray = d.mean(0)
    power = torch.fft.fftshift(torch.fft.fft2(gray - gray.mean()).abs().pow(2))
    return torch.log10(power + 1e-12).cpu().numpy()


def spectrum_view(log_power: np.ndarray, low: float = 2.0, high: float = 99.8) -> dict:
    """How to draw a `log_spectrum`: each axis's frequencies in cycles per pixel (zero in the middle, as the
    array is shifted), the zero-frequency bin blanked (NaN) and a colour range between two percentiles.

    The mean is removed before the transform, so the zero-frequency bin holds ~1e-12 (log −12): left in, it
    would stretch the colour scale over a dozen decades and flatten everything else into one colour. The
    percentiles keep a single bright bin from doing the same at the top end."""
    z = np.array(log_power, dtype=np.float64)
    h, w = z.shape
    fy, fx = np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w))
    z[h // 2, w // 2] = np.nan
    finite = z[np.isfinite(z)]
    lo, hi = (float(v) for v in np.percentile(finite, [low, high])) if finite.size else (0.0, 1.0)
    if hi <= lo:  # a flat spectrum: any visible span
        lo, hi = lo - 0.5, hi + 0.5
    # The axes end half a bin beyond the outermost frequencies, where the heat map's cells end.
    return {
        "fx": fx,
        "fy": fy,
        "z": z,
        "zmin": lo,
        "zmax": hi,
        "x_range": [float(fx[0] - 0.5 / w), float(fx[-1] + 0.5 / w)],
        "y_range": [float(fy[0] - 0.5 / h), float(fy[-1] + 0.5 / h)],
    }


def _classes(result) -> tuple[int, int]:
    """(source class, the class the attack produced: its target when targeted) of a result's first image."""
    source = int(result.y[0])
    return source, int(result.target[0]) if result.target is not None else int(result.pred_adv[0])


def heat_maps(model, result, method: str = "gradcam") -> dict[str, np.ndarray]:
    """Heat maps (`method`, a key of heatmaps.METHODS) of the clean and adversarial image, for the source class
    and for the class the attack produced (the target when targeted)."""
    source, other = _classes(result)
    x, x_adv = result.x[:1], result.x_adv[:1]
    both = torch.cat([x, x, x_adv, x_adv])
    classes = torch.tensor([source, other, source, other], device=x.device)
    maps = heatmaps.compute(model, both, method, target=classes).cpu().numpy()
    return {
        "clean · source": maps[0],
        "clean · adversarial class": maps[1],
        "adversarial · source": maps[2],
        "adversarial · adversarial class": maps[3],
        "source_class": source,
        "adversarial_class": other,
    }


def heat_panel(model, result, method: str = "gradcam") -> dict:
    """The Explorer's heat maps by `method` (heat_maps), and δ kept where the clean image's map is warm; no maps
    where the method needs layers this model hides."""
    heat = heat_maps(model, result, method) if method in usable_methods(model) else None
    delta = result.delta[:1]
    masked = None if heat is None else delta * torch.from_numpy(heat["clean · source"]).to(delta.device)
    return {
        "heat": heat,
        "masked": None if masked is None else images.signed_map(masked),
        "method": heatmaps.METHODS[method].title,
    }


def usable_methods(model) -> list[str]:
    """The heat-map methods this model allows: a model that hides its layers (an opaque TorchScript archive)
    has no CAMs, but its input gradients still make attributions."""
    return [n for n in heatmaps.METHODS if not (model.layers_unavailable and n in heatmaps.CAM_METHODS)]


def explorer_panels(white, result, blacks: Sequence = (), method: str = "gradcam", k: int = 5) -> dict:
    """Pictures, heat maps, spectrum, per-model top-k before/after and the numbers of one result."""
    delta = result.delta[:1]
    record = run_record(result, white)
    models = [white, *blacks]
    predictions = []
    pair = torch.cat([result.x[:1], result.x_adv[:1]])
    with torch.no_grad():
        for i, m in enumerate(models):
            if i == 0 and result.logits_clean is not None and result.logits_adv is not None:
                before, after = result.logits_clean[:1], result.logits_adv[:1]
            else:  # one forward of the clean and adversarial image together
                before, after = m(pair).split(1)
            predictions.append(
                {
                    "model": m.name,
                    "role": "white-box" if i == 0 else "black-box",
                    "before": topk(before, m.class_names, k)[0],
                    "after": topk(after, m.class_names, k)[0],
                    "fooled": bool(before.argmax(1) != after.argmax(1)),
                }
            )
    return {
        "clean": images.to_uint8(result.x[:1]),
        "adversarial": images.to_uint8(result.x_adv[:1]),
        "signed": images.signed_map(delta),
        "amplified": images.amplified(delta),
        "display": images.to_uint8(display_normalise(delta, white.domain, targeted=result.target is not None)),
        **heat_panel(white, result, method),
        "no_heat": white.layers_unavailable,
        "spectrum": log_spectrum(delta),
        "predictions": predictions,
        "record": record,
    }


def eps_panels(models: Sequence, result, points: int = 21) -> dict:
    """An FGSM result's ε slider: the adversarial image, δ and every model's top-1 at each ε of a grid from 0
    to 4× the run's ε (and the run's own), from one gradient (attacks.fgsm_many)."""
    eps = float(result.params["eps"])
    grid = sorted({round(float(v), 4) for v in np.linspace(0.0, min(1.0, 4 * eps), points)} | {round(eps, 4)})
    target = None if result.target is None else result.target[:1]
    many = attacks.fgsm_many(models, result.x[:1], grid, y=result.y[:1], target=target)
    x_adv, logits = many["x_adv"][:, 0], {name: v[:, 0] for name, v in many["logits"].items()}
    source = int(result.y[0])
    return {
        "eps": many["eps"],
        "run_eps": round(eps, 4),  # the run's own ε, where the slider starts
        "pictures": [images.to_uint8(a) for a in x_adv],
        "deltas": [images.signed_map((a - result.x[0])[None]) for a in x_adv],
        "top": {m.name: topk(logits[m.name], m.class_names, 1) for m in models},
        "source": {m.name: torch.softmax(logits[m.name], 1)[:, source].tolist() for m in models},
    }


def eps_view(found: dict, chosen: float, source_name: str) -> dict:
    """What the ε slider shows at `chosen` (one of eps_panels' grid): the grid index, each model's top-1 answer
    there in words, and every model's probability of the true class `source_name` along the grid."""
    i = found["eps"].index(chosen)
    answers = ", ".join(
        f"{name}: {top[i][0]['label']} ({top[i][0]['probability']:.0%})" for name, top in found["top"].items()
    )
    curves = [
        {"eps": e, "model": name, "p": p} for name, ps in found["source"].items() for e, p in zip(found["eps"], ps)
    ]
    return {"index": i, "answers": answers, "curves": curves, "title": f"probability of {source_name} vs ε"}


def twin_view(model, result, twin_row: dict) -> dict:
    """The plain-vs-robust comparison of `result` (on `model`) and the same attack on its twin (`twin_row`, a
    robust.row): the two rows plain model first, the clean image and each model's δ as shown, and per model
    (name, a line of words: robust or plain, fooled or not, δ's L2 and L∞)."""
    rows = sorted([robust.row(model, result), twin_row], key=lambda r: r["robust"])
    pictures = [("clean image", images.to_uint8(result.x[:1]), "rgb")]
    pictures += [(f"δ of {r['model']}", r["shown"], "rgb") for r in rows]
    lines = [
        (
            r["model"],
            (
                f"({'robust' if r['robust'] else 'plain'}): {'fooled' if r['fooled'] else 'not fooled'}, "
                f"L2 {float(r['result'].delta.norm()):.2f}, L∞ {float(r['result'].delta.abs().max()):.3f}"
            ),
        )
        for r in rows
    ]
    return {"rows": rows, "pictures": pictures, "lines": lines}


# ---- the Explorer's words around these panels ----------------------------------------------------

EPS_INTRO = (
    "**Every ε at once** — one gradient, all budgets in one batched forward: drag to see the image and "
    "each model's answer change, with no new attack run."
)
TWIN_NO_TARGET_IMAGES = "The twin comparison runs the attacks that need no target image; pick another attack to use it."
TWIN_NOTE = (
    "Display-normalised: δ × (−1), matched to the dataset's mean and standard deviation (a targeted δ: "
    "scaled to its peak). A robust model's δ tends to draw the object; a plain model's looks like noise."
)


def twin_intro(model_name: str) -> str:
    """The heading of the plain-vs-robust comparison for a model that has a twin."""
    return (
        f"**Plain vs robust** — {model_name} has an adversarially trained twin: the same attack on both shows "
        "whether the perturbation follows the object."
    )


def twin_lines(found: dict) -> str:
    """twin_view's per-model lines as one Markdown block, a line each."""
    return "  \n".join(f"**{name}** {words}" for name, words in found["lines"])


def model_heading(p: dict) -> str:
    """One model's heading above its before/after bars (an explorer_panels prediction)."""
    return f"**{p['model']}** ({p['role']}, {'fooled' if p['fooled'] else 'not fooled'})"


# Score-CAM runs one forward per channel of the CAM layer: past this many it is left for the user to ask for.
SCORE_CAM_CHANNELS = 256


def compared_methods(model) -> tuple[list[str], str | None]:
    """The methods a side-by-side comparison runs by default, and why Score-CAM is left out where it is."""
    methods = usable_methods(model)
    if "scorecam" not in methods:
        return methods, None
    channels = model.activation_shape(model.cam_layer)[0]
    if channels <= SCORE_CAM_CHANNELS:
        return methods, None
    note = (
        f"Score-CAM is left out by default here: it runs one forward per channel of {model.cam_layer} "
        f"({channels:,} of them), about as long as {channels // 32:,} attack steps. Add it to run it."
    )
    return [m for m in methods if m != "scorecam"], note


def every_method_seconds(model, methods: Sequence[str], steps: int = 16) -> float:
    """What `every_method` costs on this machine: each method on two images, then the faithfulness curves'
    forwards, at the model's timed pass."""
    channels = model.activation_shape(model.cam_layer)[0] if "scorecam" in methods else 0
    maps = 2 * sum(heatmaps.passes(name, channels) for name in methods)
    curves = (len(methods) + 1) * 2 * (steps + 1) / 3
    return (maps + curves) * cost.pass_seconds(model)


def every_method(
    model,
    result,
    methods: Sequence[str] | None = None,
    steps: int = 16,
    callback: progress.Callback | None = None,
) -> dict:
    """Every heat-map method side by side on one result: each method's map of the clean image for the source
    class and of the adversarial image for the class the attack produced, and how faithful each clean map is.

    Faithfulness is the deletion/insertion test on the clean image and its source class: pixels removed (or
    revealed) from black in the map's order, `steps` steps, against random maps. Low deletion and high insertion
    areas mean the map ranks pixels the way the model uses them. `methods` defaults to compared_methods'.

    `callback(step, total, state)` hears of each method done; when it returns False the methods done so far are
    returned, with `cancelled` set and no faithfulness (it compares the maps with each other: all or none)."""
    source, other = _classes(result)
    x = result.x[:1]
    both = torch.cat([x, result.x_adv[:1]])
    classes = torch.tensor([source, other], device=x.device)
    methods = list(methods) if methods is not None else compared_methods(model)[0]
    maps, total, cancelled = {}, len(methods) + 1, False
    for name in methods:
        maps[name] = heatmaps.compute(model, both, name, target=classes)
        if callback is not None and callback(len(maps), total, {"method": name}) is False:
            cancelled = True
            break
    rows, curves = [], []
    if not cancelled:
        clean = {"random": faithfulness.random_maps(x), **{name: m[:1] for name, m in maps.items()}}
        for name, heat in clean.items():
            c = faithfulness.curves(model, x, heat, source, steps)
            title = "random (control)" if name == "random" else heatmaps.METHODS[name].title
            rows.append(
                {
                    "method": title,
                    "deletion AUC (lower is better)": float(c.deletion_auc[0]),
                    "insertion AUC (higher is better)": float(c.insertion_auc[0]),
                }
            )
            for fraction, gone, shown in zip(c.fractions.tolist(), c.deletion[0].tolist(), c.insertion[0].tolist()):
                curves.append({"method": title, "fraction of pixels": fraction, "deletion": gone, "insertion": shown})
        if callback is not None:
            callback(total, total, {})
    return {
        "source_class": source,
        "adversarial_class": other,
        "maps": [(heatmaps.METHODS[name].title, m[0].cpu().numpy(), m[1].cpu().numpy()) for name, m in maps.items()],
        "auc": sorted(
            rows,
            key=lambda r: r["insertion AUC (higher is better)"] - r["deletion AUC (lower is better)"],
            reverse=True,
        ),
        "curves": curves,
        "cancelled": cancelled,
        "methods": len(methods),
    }
