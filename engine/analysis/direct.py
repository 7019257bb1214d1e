"""A black-box model attacked directly, from its labels alone, beside a perturbation transferred from the white box.

A query-only attacker never sees gradients or scores: every image it sends the black box returns one label,
and each counts as a query. Success here means the black box's label changes from the one it gives the clean
image, for the direct attack and for the transferred perturbation alike, so the two compare on equal terms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine import attacks, cost, domains, progress, targets
from engine.attacks.base import model_defaults, resolve_params

DECISION = ("hopskipjump", "boundary")  # the label-only attacks: they need nothing of the black box but its labels


def budget(black, attack: str, params: dict | None = None) -> int:
    """The query budget per image that `attack` runs with on `black` (given, else its default)."""
    return int(_values(black, attack, params)["n_queries"])


def _values(black, attack: str, params: dict | None) -> dict:
    if attack not in DECISION:
        raise ValueError(f"{attack!r} is not a label-only attack; choose from {', '.join(DECISION)}")
    given = {k: v for k, v in (params or {}).items() if v is not None}
    budgets = domains.of(black).defaults.get("direct", {})  # where a query costs a slow forward
    domain = {**model_defaults(black), **({"n_queries": budgets[attack]} if attack in budgets else {})}
    return resolve_params(attacks.get(attack), domain, given)


def seconds(black, attack: str, params: dict | None = None) -> float:
    """Expected time here (engine.cost: forwards only)."""
    return cost.attack_seconds(black, attack, 1, {**(params or {}), "n_queries": budget(black, attack, params)})


def _label(model, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(x).argmax(1)[0])


def _name(model, label: int) -> str:
    names = getattr(model, "class_names", None)
    return names[label] if names else str(label)


def _sizes(delta: torch.Tensor) -> tuple[float, float]:
    flat = delta.flatten()
    return float(flat.norm()), float(flat.abs().max())


def run(
    black,
    x: torch.Tensor,
    attack: str = "hopskipjump",
    *,
    seed: int = 0,
    callback: progress.Callback | None = None,
    transferred: dict | None = None,
    **params,
) -> dict:
    """Attack `black` on the one image `x` (1×C×H×W in [0, 1]) with a label-only attack (DECISION).

    The progress state carries `queries` (spent so far, an int) and `budget`. Returns the adversarial image,
    δ, its L2 and L∞, success, the queries used, the black box's labels before and after, and, with
    `transferred` (from `transferred_image`, made for the same image), `comparison`. A cancelled run returns
    the smallest adversarial image found so far (`stopped_early`)."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"the direct attack takes one image (1×C×H×W), got {tuple(x.shape)}")
    allowed = budget(black, attack, params)
    x = x.to(black.device)
    before = _label(black, x)

    def relay(step, total, state):
        spent = state.get("queries")
        spent = int(spent.sum()) if isinstance(spent, torch.Tensor) else int(spent or 0)
        return callback(step, total, {**state, "queries": spent, "budget": allowed})

    result = attacks.run(
        attack,
        black,
        x,
        y=torch.tensor([before], device=x.device),
        seed=seed,
        callback=relay if callback else None,
        **{**{k: v for k, v in params.items() if v is not None}, "n_queries": allowed},
    )
    after = int(result.pred_adv[0])
    l2, linf = _sizes(result.delta)
    found = {
        "black": black.name,
        "attack": attack,
        "title": attacks.get(attack).title,
        "params": dict(result.params),
        "seed": seed,
        "x": x.cpu(),
        "x_adv": result.x_adv.cpu(),
        "delta": result.delta.cpu(),
        "l2": l2,
        "linf": linf,
        "success": bool(result.success[0]),
        "queries": int(result.queries[0]) if result.queries is not None else 0,
        "budget": allowed,
        "label_before": before,
        "label_after": after,
        "class_before": _name(black, before),
        "class_after": _name(black, after),
        "stopped_early": result.stopped_early,
        "seconds": result.seconds,
    }
    if transferred is not None:
        found["comparison"] = compare(black, x, transferred, found)
    return found


def transferred_image(
    white,
    x: torch.Tensor,
    bank: tuple[torch.Tensor, torch.Tensor],
    *,
    method: str,
    eps: float,
    steps: int,
    layer: int | None = None,
    target_image: str = targets.FARTHEST,
    seed: int = 0,
) -> dict:
    """The white box's adversarial image of `x` by one of the Transfer lab's methods (engine.analysis.transfer
    METHODS), its target drawn among `bank`'s classes (labelled images: AA's target images come from them).
    The source label is the white box's own answer, as for any image without a label."""
    from engine.analysis.transfer import METHODS, adversarial

    if method not in METHODS:
        raise ValueError(f"unknown transfer method {method!r}; choose from {', '.join(METHODS)}")
    x = x.to(white.device)
    y = torch.tensor([_label(white, x)], device=x.device)
    aa = attacks.get(METHODS[method][0]).needs_target_images
    x_adv, target, used = adversarial(
        white,
        method,
        x,
        y,
        seed=seed,
        bank=(bank[0].to(x.device), bank[1].to(x.device)),
        target_image=target_image,
        eps=eps,
        steps=steps,
        **({"layer": layer} if aa else {}),
    )
    return {
        "white": white.name,
        "method": method,
        "eps": eps,
        "steps": steps,
        "layer": used.get("layer"),
        "target": None if target is None else int(target[0]),
        "x_adv": x_adv.cpu(),
    }


def compare(black, x: torch.Tensor, transferred: dict, direct: dict) -> dict:
    """The transferred perturbation scored on `black` beside the direct attack: each one's L2, L∞ and whether
    it changes the black box's label, the queries each cost, and one sentence."""
    from engine.analysis.transfer import TITLES

    x = x.to(black.device)
    x_adv = transferred["x_adv"].to(black.device)
    after = _label(black, x_adv)
    l2, linf = _sizes((x_adv - x).cpu())
    row = {
        "white": transferred["white"],
        "method": transferred["method"],
        "eps": transferred["eps"],
        "transfer_l2": l2,
        "transfer_linf": linf,
        "transfer_success": after != direct["label_before"],
        "transfer_class": _name(black, after),
        "direct_l2": direct["l2"],
        "direct_linf": direct["linf"],
        "direct_success": direct["success"],
        "queries": direct["queries"],
    }
    row["sentence"] = comparison_sentence(row, black.name, TITLES.get(row["method"], row["method"]), short(direct))
    return row


def comparison_sentence(row: dict, black: str, method: str, attack: str) -> str:
    """One sentence: which of the two changes the black box's label on this image, at what L2, and the price."""
    transfer = f"{method}'s perturbation from {row['white']} (ε {row['eps']:g}, L2 {row['transfer_l2']:.2f})"
    direct = f"{attack}'s (L2 {row['direct_l2']:.2f})"
    price = f"{row['queries']:,} queries to {black}"
    if row["transfer_success"] and row["direct_success"]:
        ratio = row["transfer_l2"] / max(row["direct_l2"], 1e-12)
        size = f"{ratio:.1f}× smaller" if ratio >= 1 else f"{1 / ratio:.1f}× larger"
        return (
            f"Both change {black}'s label on this image: {transfer} cost no queries; {direct} is {size} in L2 "
            f"and cost {price}."
        )
    if row["direct_success"]:
        return f"{transfer} does not change {black}'s label on this image; {direct} does, after {price}."
    if row["transfer_success"]:
        return f"{transfer} changes {black}'s label on this image; {attack} found no change within {price}."
    return f"Neither changes {black}'s label on this image: not {transfer}, nor {attack} within {price}."


def strongest(rows: Sequence[dict], black: str) -> dict | None:
    """The Transfer lab's sweep row that fools `black` most: at the largest ε, the method (or AA's layer) with the
    highest error; None where the sweep measured nothing on it."""
    mine = [r for r in rows if r["black"] == black and r.get("error") is not None]
    if not mine:
        return None
    top = max(r["eps"] for r in mine)
    return max((r for r in mine if r["eps"] == top), key=lambda r: (r["error"], r.get("tSuc") or 0))


def short(found: dict) -> str:
    """The attack's name without its kind: 'HopSkipJump'."""
    return found["title"].split(" (")[0]


def record(found: dict) -> dict:
    """`run`'s dict without its images: what the CLI prints as JSON."""
    return {k: v for k, v in found.items() if not isinstance(v, torch.Tensor)}
