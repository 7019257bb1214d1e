"""One attack run as plain, JSON-ready numbers: what the CLI prints and the app downloads."""

from __future__ import annotations

import csv
import io
import json
import platform

import torch

from engine import attacks, images
from engine.attacks import AttackResult
from engine.metrics import perturbation_report, topk


def environment(device: torch.device | str) -> dict:
    """Versions and device, so a saved result says how to reproduce it."""
    from importlib.metadata import version

    return {
        "torch": torch.__version__,
        # The installed distribution's version, read without importing torchvision (a second of torch._dynamo at
        # the start of every command); torch's own entry names the build (+cu130, +cpu).
        "torchvision": version("torchvision"),
        "python": platform.python_version(),
        "device": str(device),
    }


def summarize(result: AttackResult, model, k: int = 5) -> list[dict]:
    """Per example: top-k before/after, success, L0 %/L2/L∞/SSIM, iterations, queries."""
    clean = topk(result.logits_clean, model.class_names, k)
    adv = topk(result.logits_adv, model.class_names, k)
    sizes = perturbation_report(result.x, result.x_adv)
    # What a downloaded PNG holds: a perturbation below half an 8-bit level rounds away.
    with torch.no_grad():
        saved = model(images.quantised(result.x_adv)).argmax(1)
    saved_success = result.reached(saved)
    rows = []
    for i in range(result.x.shape[0]):
        row = {
            "label": int(result.y[i]),
            "label_name": model.class_names[int(result.y[i])],
            "target": None if result.target is None else int(result.target[i]),
            "target_name": None if result.target is None else model.class_names[int(result.target[i])],
            "clean_top5": clean[i],
            "adversarial_top5": adv[i],
            "success": bool(result.success[i]),
            "success_8bit": bool(saved_success[i]),
            "prediction_8bit": model.class_names[int(saved[i])],
            "iterations": int(result.iterations[i]),
            "queries": None if result.queries is None else int(result.queries[i]),
        }
        row.update(sizes[i])
        rows.append(row)
    return rows


def run_record(result: AttackResult, model) -> dict:
    """The whole run: attack, parameters, seed, timing, environment and per-example rows."""
    return {
        "model": model.name,
        "precision": result.precision,  # what the attack computed in: `auto` resolved
        "precision_requested": getattr(model, "precision", "fp32"),
        "attack": result.attack,
        "params": result.params,
        "seed": result.seed,
        "seconds": round(result.seconds, 4),
        "stopped_early": result.stopped_early,
        "environment": environment(result.x.device),
        "examples": summarize(result, model),
        # An ensemble's per-stage figures (AutoAttack: robust accuracy after each attack).
        **({"stages": result.stages} if result.stages is not None else {}),
    }


# The parameters a headline names (the rest are in the record); symbols as the method guide writes them.
_HEADLINE_PARAMS = ("eps", "steps", "n_queries", "max_distortion", "layer", "c", "num_classes", "p_th")
_SYMBOLS = {"eps": "ε", "max_distortion": "Υ", "p_th": "P_th", "n_queries": "queries"}


def describe_attack(record: dict) -> str:
    """'PGD (ε 0.03, steps 10)': the attack's short name and its budget."""
    short = attacks.get(record["attack"]).title.split(" (")[0]
    shown = [
        f"{_SYMBOLS.get(k, k)} {v:g}"
        for k, v in record["params"].items()
        if k in _HEADLINE_PARAMS and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    return f"{short} ({', '.join(shown)})" if shown else short


def headline(record: dict, i: int = 0) -> dict:
    """What one result says in words: title (attack, budget, top-1 before → after with confidence),
    verdict (fooled / target reached or missed), and a sentence on whether a saved 8-bit PNG still does it
    (None when there is no success to keep)."""
    row = record["examples"][i]
    clean, adv = row["clean_top5"][0], row["adversarial_top5"][0]
    title = (
        f"{describe_attack(record)}: {clean['label']} {clean['probability']:.0%} → "
        f"{adv['label']} {adv['probability']:.0%}"
    )
    changed = adv["index"] != row["label"]
    if row["target"] is None:
        verdict = "fooled" if row["success"] else "not fooled"
    elif row["success"]:
        verdict = f"target {row['target_name']} reached"
    else:
        verdict = f"target {row['target_name']} missed" + (" (the prediction changed)" if changed else " (not fooled)")
    if not row["success"]:
        rounding = None
    elif row["success_8bit"]:
        rounding = "Survives 8-bit rounding: the PNG download does the same."
    else:
        rounding = (
            f"Does not survive 8-bit rounding: rounded to whole 8-bit levels, as in the PNG download, "
            f"the image is classified as {row['prediction_8bit']} (the .npy download keeps the exact values)."
        )
    return {"title": title, "verdict": verdict, "rounding": rounding, "survives_8bit": row["success_8bit"]}


def size_numbers(row: dict, seconds: float) -> list[tuple[str, str, str | None]]:
    """A result's sizes as (label, value, glossary term or None): L0, L2, L∞, SSIM, the work it took (queries for
    a black-box attack, else iterations) and the time."""
    steps = (
        ("Iterations", str(row["iterations"]), "iterations")
        if row["queries"] is None
        else ("Queries", str(row["queries"]), "queries")
    )
    return [
        ("L0 (% pixels)", f"{row['l0_pct']:.1f}", "L0"),
        ("L2", f"{row['l2']:.3f}", "L2"),
        ("L∞", f"{row['linf']:.4f}", "L∞"),
        ("SSIM", f"{row['ssim']:.4f}", "SSIM"),
        steps,
        ("Time", f"{seconds:.2f} s", None),
    ]


def numbers_csv(record: dict, predictions: list[dict]) -> str:
    """The first example's sizes, a blank row, then every model's top-k before and after, one class a row."""
    out = io.StringIO()
    writer = csv.writer(out)
    row = record["examples"][0]
    writer.writerow(["quantity", "value"])
    for key in ("success", "l0_pct", "l2", "linf", "ssim", "iterations", "queries"):
        writer.writerow([key, row.get(key)])
    writer.writerow([])
    writer.writerow(["model", "role", "when", "rank", "class", "label", "probability"])
    for p in predictions:
        for when in ("before", "after"):
            for rank, r in enumerate(p[when], start=1):
                writer.writerow([p["model"], p["role"], when, rank, r["index"], r["label"], f"{r['probability']:.6f}"])
    return out.getvalue()


def result_files(result: AttackResult, record: dict, predictions: list[dict], image: str) -> list[tuple]:
    """Each download of one result as (label, contents, file name, MIME type). Picture files are functions that
    make the bytes when called: PNG encoding is most of a redraw's cost, so it waits for the click."""
    full = dict(record, image=image, black_box=predictions[1:])
    return [
        ("Adversarial (PNG)", lambda: images.png_bytes(images.to_uint8(result.x_adv)), "adversarial.png", "image/png"),
        ("Perturbation (PNG)", lambda: images.png_bytes(images.signed(result.delta)), "perturbation.png", "image/png"),
        (
            "Perturbation (.npy)",
            lambda: images.npy_bytes(result.delta[0].cpu().numpy()),
            "perturbation.npy",
            "application/octet-stream",
        ),
        ("Numbers (JSON)", json.dumps(full, indent=2), "attack.json", "application/json"),
        ("Numbers (CSV)", numbers_csv(full, predictions), "attack.csv", "text/csv"),
    ]
