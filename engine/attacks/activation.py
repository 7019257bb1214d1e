"""Activation Attack (Inkawhich et al., CVPR 2019; docs/sources.md).

Targeted and feature-level: move the source image's activation at catalogue
layer L towards that of a target image I_t of the target class.

    J = ‖f_L(I_k) − f_L(I_t)‖₂,  m ← m + ∇J / ‖∇J‖₁,  I ← Π_ε,[0,1](I − α·sign(m))

with K = 10 and α = ε/K by default. f_L(I_t) is computed once. The layer's
output is read with a forward hook that lives only inside the model's lock.
How I_t is chosen (farthest-in-class from a bank) is `engine.analysis.target_images`.
"""

from __future__ import annotations

import torch

from engine.attacks.base import AttackSpec, Context, Param
from engine.attacks.params import ALPHA, EPS
from engine.attacks.projections import project_linf
from engine.hooks import capture_activations

STEPS = Param("steps", int, 10, 1, 1000, "number of iterations K (10 in the paper)")
LAYER = Param("layer", int, None, 0, 10000, "layer catalogue index L; empty means the middle layer")


def layer_name(model, layer: int | None) -> str:
    layers = model.layers()
    return (layers[len(layers) // 2] if layer is None else model.layer(layer)).name


def activation_attack(ctx: Context, eps: float, alpha: float | None, steps: int, layer: int | None) -> torch.Tensor:
    model, x = ctx.model, ctx.x
    name = layer_name(model, layer)
    alpha = eps / steps if alpha is None else alpha
    reduce_dims = tuple(range(1, x.dim()))
    with model.lock, capture_activations(model, [name]) as acts:
        if ctx.resume:  # the goal is kept rather than recomputed: a resumed run then follows the same goal exactly
            first, goal = ctx.resume["step"], ctx.resume["goal"]
            x_adv, momentum = ctx.resume["x_adv"], ctx.resume["momentum"]
        else:
            with torch.no_grad():
                model(ctx.target_images)
                goal = acts[name].detach().flatten(1)
            first, x_adv, momentum = 0, x.clone(), torch.zeros_like(x)
        for step in range(first, steps):
            x_var = x_adv.detach().requires_grad_(True)
            model(x_var)
            distance = (acts[name].flatten(1) - goal).norm(dim=1)
            grad = torch.autograd.grad(distance.sum(), x_var)[0]
            l1 = grad.abs().sum(dim=reduce_dims, keepdim=True)
            momentum = momentum + grad / torch.where(l1 > 0, l1, torch.ones_like(l1))
            x_adv = project_linf(x_adv - alpha * momentum.sign(), x, eps)
            ctx.iterations.fill_(step + 1)
            if not ctx.report(step + 1, steps, x_adv=x_adv, feature_distance=distance.detach()):
                ctx.keep(step=step + 1, goal=goal, x_adv=x_adv, momentum=momentum)
                break
    return x_adv


SPEC = AttackSpec(
    "aa",
    "Activation Attack (feature-level, targeted)",
    activation_attack,
    (EPS, ALPHA, STEPS, LAYER),
    norm="linf",
    targeted=True,
    untargeted=False,
    needs_target_images=True,
    needs_layers=True,
    averageable=False,
    reference="Inkawhich et al. 2019, Feature Space Perturbations Yield More Transferable Adversarial Examples",
    summary="pulls the layer-L activation towards a target image's, with L1-normalised momentum",
)
