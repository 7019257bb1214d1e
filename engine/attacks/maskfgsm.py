"""Mask-FGSM (Yu 2022; docs/sources.md): an FGSM step weighted by the thresholded Grad-CAM map.

    S = GradCAM(x*) for the source class (upsampled, in [0, 1]);  S[S < P_th] = 0
    η = ε·sign(∇x J(x*));  x* = x + S ⊙ η

With `steps` = 1 this is the single-step Eq. 5. With more steps it is
Algorithm 1: S and η are recomputed at the current x* (still applied to the
clean x) while the image is classified as its source class and the share of
changed pixels ‖δ‖₀ is below τ; `steps` caps the loop, which the paper leaves
open (a fixed point that does not fool the model would otherwise spin forever).
The paper's loop condition reads "while F(X*) ≠ Y", which would stop before the first
step on any correctly classified image; it is read as "while F(X*) = Y" (keep going until fooled).

`mask` "binary" keeps the threshold but drops the weighting (x* = x + 1[S ≥ P_th] ⊙ η): it
separates where the map points from how much it scales the step, and at P_th = 0 it is
FGSM exactly.
"""

from __future__ import annotations

import torch

from engine.attacks.base import AttackSpec, Context, Param, loss_gradient
from engine.attacks.params import EPS
from engine.heatmaps import grad_cam
from engine.metrics import norms

P_TH = Param("p_th", float, 0.5, 0.0, 1.0, "heat-map threshold P_th: pixels with S < P_th are left alone")
STEPS = Param("steps", int, 1, 1, 100, "1 = single step (Eq. 5); more = Algorithm 1's loop, at most this many passes")
TAU = Param("tau", float, 100.0, 0.0, 100.0, "Algorithm 1's L0 budget τ, in % of pixels", low_open=True)
MASK = Param(
    "mask",
    str,
    "weighted",
    help="weighted: the step is scaled by the map S (the paper); binary: the full step wherever S ≥ P_th",
    choices=("weighted", "binary"),
)


def masked_step(
    ctx: Context, x_star: torch.Tensor, idx: torch.Tensor, eps: float, p_th: float, mask: str = "weighted"
) -> torch.Tensor:
    """x + F(S, P_th) ⊙ η with S and η measured at x_star, for the examples `idx`."""
    sub = Context(
        ctx.model, ctx.x[idx], ctx.y[idx], None if ctx.target is None else ctx.target[idx], ctx.generator, None
    )
    heat = grad_cam(ctx.model, x_star, target=ctx.y[idx])  # the source class's evidence
    # ≥ as Algorithm 1 writes it (Eq. 6 has >): the two differ only where S equals P_th, and at P_th = 0 the
    # binary mask then covers every pixel.
    kept = heat >= p_th
    heat = (kept.to(heat.dtype) if mask == "binary" else torch.where(kept, heat, torch.zeros_like(heat))).unsqueeze(1)
    return ctx.x[idx] + heat * eps * loss_gradient(sub, x_star).sign()


def mask_fgsm(ctx: Context, eps: float, p_th: float, steps: int, tau: float, mask: str) -> torch.Tensor:
    if ctx.resume:
        first, x_adv, active = ctx.resume["step"], ctx.resume["x_adv"], ctx.resume["active"]
    else:
        first, x_adv = 0, ctx.x.clone()
        active = torch.ones(ctx.x.shape[0], dtype=torch.bool, device=ctx.x.device)
    for step in range(first, steps):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        x_adv[idx] = masked_step(ctx, x_adv[idx], idx, eps, p_th, mask).clamp(0.0, 1.0)
        ctx.iterations[idx] += 1
        with torch.no_grad():
            pred = ctx.model(x_adv[idx]).argmax(1)
        done = ctx.reached(pred, idx)
        done |= norms(x_adv[idx] - ctx.x[idx])["l0_pct"] >= tau
        active[idx[done]] = False
        if not ctx.report(step + 1, steps, x_adv=x_adv, upper_bound=True):
            ctx.keep(step=step + 1, x_adv=x_adv, active=active)
            break
    return x_adv


SPEC = AttackSpec(
    "maskfgsm",
    "Mask-FGSM (Grad-CAM-masked FGSM)",
    mask_fgsm,
    (EPS, P_TH, STEPS, TAU, MASK),
    norm="linf",
    targeted=True,
    averageable=False,
    stops_early=True,
    needs_layers=True,
    work=lambda v, shape: 2.0 * v["steps"],  # a Grad-CAM map and a loss gradient per step
    reference="Yu 2022, Mask-FGSM adversarial samples attack based on Grad-CAM",
    summary="FGSM noise only where the Grad-CAM heat map exceeds P_th, weighted by the map",
)
