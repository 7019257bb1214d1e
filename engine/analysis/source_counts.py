"""Strength and recognisability against the number of source models averaged.

Menn 2023 averages noisy copies over up to 270 source models and reports that the
perturbation grows stronger and more recognisable the more models it averages. Here
the curve takes the first k of one fixed list of sources for each k, so the sets are
nested (the 4 sources lie inside the 8) and one pass over the largest set gives
every point: each source is attacked once, on the noise the all-sources average
draws for it, and the k-source δ is the mean of the first k sources' δ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine import progress
from engine.analysis import recognisable
from engine.attacks.averaging import averaged

DEFAULT_COUNTS = (1, 2, 4, 8, 16, 32)


def check_counts(counts: Sequence[int], available: int) -> list[int]:
    """The counts in increasing order, each a whole number in [1, available]."""
    bad = [c for c in counts if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= available]
    if bad or not counts:
        raise ValueError(
            f"source counts must be whole numbers in [1, {available}] (the source models there are), got "
            f"{bad[0] if bad else 'none'}"
        )
    return sorted(set(counts))


def nested_deltas(
    sources: Sequence,
    x: torch.Tensor,
    y: torch.Tensor | None,
    attack: str,
    params: dict,
    counts: Sequence[int],
    *,
    copies: int,
    sigma: float,
    target: torch.Tensor | None = None,
    seed: int = 0,
    callback: progress.Callback | None = None,
    done: dict[int, torch.Tensor] | None = None,
) -> dict[int, torch.Tensor]:
    """count → the noisy multi-model δ of `attack` over the first `count` of `sources`.

    The noise is drawn once with `seed` for the largest count, as `averaged` draws it, so for a deterministic
    attack each point equals `averaged` over the first `count` sources with the same seed; source i's noise does
    not depend on the largest count. `done`: source index → its own δ from an earlier run with the same settings,
    reused, and filled in with the sources attacked now. Once cancelled, the counts finished so far come back."""
    counts = check_counts(list(counts), len(sources))
    params = dict(params)
    copies, sigma = params.pop("copies", copies), params.pop("sigma", sigma)  # an attack's own, as in Table 4.2
    largest = counts[-1]
    generator = torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.randn((largest, copies, *x.shape), generator=generator, device=x.device) * sigma
    total, out, done = torch.zeros_like(x), {}, {} if done is None else done
    for i, model in enumerate(sources[:largest]):
        if i not in done:
            result = averaged(
                attack,
                [model],
                x,
                y=y,
                target=target,
                copies=copies,
                sigma=sigma,
                seed=seed,
                noise=noise[i : i + 1],
                callback=progress.part(callback, i, largest, attack=attack, source=getattr(model, "name", str(i))),
                **params,
            )
            if result.stopped_early:
                break
            done[i] = result.delta
        total += done[i]
        if i + 1 in counts:
            out[i + 1] = total / (i + 1)
    return out


def _keyed(attack: str, deltas: dict[int, torch.Tensor]) -> dict[tuple[str, str], torch.Tensor]:
    return {(attack, f"{k} sources"): d for k, d in deltas.items()}


def strength_curve(
    tests: Sequence, x: torch.Tensor, y: torch.Tensor, attack: str, deltas: dict[int, torch.Tensor], eps: float, seed=0
) -> list[dict]:
    """`recognisable.strength_table` of each count's δ (clean and ±ε noise first), with a "sources" column."""
    rows = recognisable.strength_table(tests, x, y, _keyed(attack, deltas), eps, seed=seed)
    return [{**r, "sources": _count(r["setting"])} for r in rows]


def recognisability_curve(
    tests: Sequence,
    y: torch.Tensor,
    attack: str,
    deltas: dict[int, torch.Tensor],
    domain: str,
    choices: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """`recognisable.recognisability_table` of each count's δ, with a "sources" column."""
    rows = recognisable.recognisability_table(tests, y, _keyed(attack, deltas), domain, choices=choices, seed=seed)
    return [{**r, "sources": _count(r["setting"])} for r in rows]


def _count(setting: str) -> int | None:
    return int(setting.split()[0]) if setting.endswith(" sources") else None


def mean_by_count(rows: list[dict], value: str) -> dict[int, float]:
    """count → the mean of `value` over the test models (rows without a count, clean and noise, left out)."""
    groups: dict[int, list[float]] = {}
    for r in rows:
        if r.get("sources") is not None:
            groups.setdefault(r["sources"], []).append(r[value])
    return {k: sum(v) / len(v) for k, v in sorted(groups.items())}
