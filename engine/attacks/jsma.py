"""JSMA, the Jacobian-based Saliency Map Attack (Papernot et al. 2016). Targeted.

Per iteration and image: α = ∂F_t/∂X and β = ∂(Σ_{j≠t} F_j)/∂X (F = logits);
the increasing variant (θ = +1) looks for a feature pair (p, q) with
α_p + α_q > 0 and β_p + β_q < 0 maximising (α_p + α_q)·|β_p + β_q|, sets both to
1 and removes them from the search domain; the decreasing variant (θ = −1)
flips the signs and sets them to 0. It stops at the target or when the share of
modified features exceeds Υ (`max_distortion`).

A pair search over all D² pairs is what makes reference implementations run
out of memory on 224×224 photos (D = 150,528). Here each image's search is
restricted to its `candidates` most salient features (by |α − β|, inside the
search domain), so memory is N·k² per step, and images run as one batch.
`pairs` > 1 changes that many best disjoint pairs per step, for speed on photos (at most k/2).
"""

from __future__ import annotations

import math

import torch

from engine.attacks.base import FORWARD_PASS, AttackSpec, Context, Param
from engine.attacks.margins import robust

THETA = Param("theta", int, 1, -1, 1, "+1 increases features to 1 (increasing variant), −1 decreases them to 0")
MAX_DISTORTION = Param(
    "max_distortion", float, 0.1, 0.0, 1.0, "Υ: largest share of features that may change", low_open=True
)
CANDIDATES = Param("candidates", int, 64, 2, 4096, "k: pair search among the k most salient features per step")
PAIRS = Param("pairs", int, 1, 1, 1024, "best pairs changed per step (1 = the paper's algorithm)")


def jacobian_terms(
    ctx: Context, x_adv: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """α (target logit's gradient), β (gradient of the other logits' sum), and the current logits."""
    x_var = x_adv.detach().requires_grad_(True)
    logits = ctx.logits(x_var)
    alpha = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x_var, retain_graph=True)[0].flatten(1)
    total = torch.autograd.grad(logits.sum(), x_var)[0].flatten(1)
    return alpha, total - alpha, logits.detach()


def positive_saliency_share(alpha: torch.Tensor, beta: torch.Tensor, theta: int = 1) -> torch.Tensor:
    """Per example: share of features whose single-feature saliency S(X, t)[i] is positive."""
    good = (alpha > 0) & (beta < 0) if theta > 0 else (alpha < 0) & (beta > 0)
    return good.float().mean(1)


def jsma_steps(max_distortion: float, features: int, pairs: int) -> int:
    """The most iterations: each saturates `pairs` feature pairs until Υ·d features changed."""
    return max(1, int(max_distortion * features) // 2 // pairs)


def disjoint_best(pair_score: torch.Tensor, pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of m×k×k pair scores: the `pairs` best pairs that share no feature, greedily (best first, then the
    best among pairs disjoint from those taken), as (scores, flat indices p·k + q), −inf where none was left.

    Disjoint, so `pairs` pairs change 2·pairs features; the top scores alone would reuse the one most salient
    feature in most of them."""
    m, k, _ = pair_score.shape
    score = pair_score.clone()
    values, indices = [], []
    rows = torch.arange(m, device=score.device)
    for _ in range(min(pairs, k // 2)):
        value, flat = score.flatten(1).max(1)
        values.append(value)
        indices.append(flat)
        for feature in (flat // k, flat % k):  # neither feature may appear in another pair
            score[rows, feature, :] = float("-inf")
            score[rows, :, feature] = float("-inf")
    return torch.stack(values, 1), torch.stack(indices, 1)


def jsma(ctx: Context, theta: int, max_distortion: float, candidates: int, pairs: int) -> torch.Tensor:
    if theta == 0:
        raise ValueError("parameter 'theta' must be +1 or -1")
    x = ctx.x
    n, d = x.shape[0], x[0].numel()
    if ctx.resume:
        first, flat, active = ctx.resume["step"], ctx.resume["x_adv"], ctx.resume["active"]
        domain, changed = ctx.resume["domain"], ctx.resume["changed"]
    else:
        first, flat = 0, x.clone().flatten(1)
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        # The search domain: features that can still move in θ's direction and were not changed yet.
        domain = flat < 1.0 if theta > 0 else flat > 0.0
        changed = torch.zeros_like(domain)
    max_steps = jsma_steps(max_distortion, d, pairs)
    budget = int(max_distortion * d)
    k = min(candidates, d)
    extreme = 1.0 if theta > 0 else 0.0
    for step in range(first, max_steps):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        alpha, beta, logits = jacobian_terms(ctx, flat[idx].view(-1, *x.shape[1:]), ctx.target[idx])
        # At the target by a margin rounding cannot undo (margins.robust), not merely its argmax.
        there = robust(logits, ctx.target[idx], True)
        done = there | (changed[idx].sum(1) + 2 * pairs > budget) | (domain[idx].sum(1) < 2)
        active[idx[done]] = False
        keep = ~done
        idx, alpha, beta = idx[keep], alpha[keep], beta[keep]
        if idx.numel() == 0:
            break
        score = (alpha - beta) * theta
        score = score.masked_fill(~domain[idx], float("-inf"))
        cand = score.topk(k, dim=1).indices  # (m, k)
        a = alpha.gather(1, cand)
        b = beta.gather(1, cand)
        valid = domain[idx].gather(1, cand)
        a2 = a[:, :, None] + a[:, None, :]
        b2 = b[:, :, None] + b[:, None, :]
        ok = ((a2 > 0) & (b2 < 0)) if theta > 0 else ((a2 < 0) & (b2 > 0))
        ok &= valid[:, :, None] & valid[:, None, :]
        # (p, q) and (q, p) are one pair: the upper triangle holds each once, without p = q.
        ok &= torch.ones(k, k, dtype=torch.bool, device=x.device).triu(1)[None]
        pair_score = (a2 * b2).neg().masked_fill(~ok, float("-inf"))  # α·|β| when the signs are right
        best_val, best = disjoint_best(pair_score, pairs)
        found = torch.isfinite(best_val[:, 0])
        active[idx[~found]] = False  # no admissible pair left: JSMA gives up on this image
        p, q = cand.gather(1, best // k), cand.gather(1, best % k)
        for feats in (p, q):
            usable = torch.isfinite(best_val) & found[:, None]
            r = idx[:, None].expand_as(feats)[usable]
            f = feats[usable]
            flat[r, f] = extreme
            changed[r, f] = True
            domain[r, f] = False
        ctx.iterations[idx] += 1
        if not ctx.report(step + 1, max_steps, x_adv=flat.view_as(x), upper_bound=True):
            ctx.keep(step=step + 1, x_adv=flat, active=active, domain=domain, changed=changed)
            break
    return flat.view_as(x)


SPEC = AttackSpec(
    "jsma",
    "JSMA (targeted, L0)",
    jsma,
    (THETA, MAX_DISTORTION, CANDIDATES, PAIRS),
    norm="l0",
    targeted=True,
    untargeted=False,
    stops_early=True,
    # Per step: one forward and two backwards (α and β).
    work=lambda v, shape: jsma_steps(v["max_distortion"], math.prod(shape), v["pairs"]) * 5 * FORWARD_PASS,
    reference="Papernot et al. 2016, The Limitations of Deep Learning in Adversarial Settings",
    summary="greedily saturates the feature pairs whose saliency most favours the target class",
)
