"""Sign-gradient L∞ attacks: FGSM, BIM (ITCM when targeted), PGD (TPGD), MI-FGSM (TMIFGSM).

They are one algorithm with switches (random start, momentum), so they
share one loop; each public function fixes the switches for its paper.
"""

from __future__ import annotations

import torch

from engine.attacks import compiled
from engine.attacks.base import AttackSpec, Context, loss_gradient
from engine.attacks.params import ALPHA, ALPHA_PGD, DECAY, EPS, PGD_ALPHA_FACTOR, RANDOM_START, STEPS
from engine.attacks.projections import project_linf


def sign_iterations(
    ctx: Context, eps: float, alpha: float | None, steps: int, random_start: bool = False, decay: float | None = None
) -> torch.Tensor:
    """K steps of x ← Π_ε(x + α·sign(g)); with `decay`, g is MI-FGSM's L1-normalised momentum.

    MI-FGSM divides ∇ by its mean absolute value (‖∇‖₁ / d). That differs from
    ‖∇‖₁ by a constant per image, which leaves every sign(g) unchanged, and it
    matches torchattacks term for term.
    """
    x = ctx.x
    alpha = eps / steps if alpha is None else alpha
    if ctx.resume:
        first, x_adv, momentum = ctx.resume["step"], ctx.resume["x_adv"], ctx.resume["momentum"]
    else:
        first = 0
        x_adv = ctx.clamp(x + (2.0 * ctx.rand(*x.shape) - 1.0) * eps) if random_start else x.clone()
        momentum = torch.zeros_like(x) if decay is not None else None
    fused = None
    if ctx.compile and compiled.eligible(ctx.model):
        fused = compiled.sign_step(
            ctx.model,
            x,
            targeted=ctx.targeted,
            clip=ctx.clip,
            momentum=momentum is not None,
            mode=ctx.precision,
            backend=ctx.compile,
        )
        constants = [torch.tensor(float(v), dtype=x.dtype, device=x.device) for v in (alpha, eps, decay or 0.0)]
    for step in range(first, steps):
        if fused is not None:
            x_adv, momentum = fused(x_adv, x, ctx.labels, *constants, momentum)
        else:
            grad = loss_gradient(ctx, x_adv)
            if momentum is not None:
                scale = grad.abs().mean(dim=tuple(range(1, x.dim())), keepdim=True)
                # Confident examples have gradients far below 1e-12, so only an exact zero is guarded.
                grad = grad / torch.where(scale > 0, scale, torch.ones_like(scale)) + decay * momentum
                momentum = grad
            x_adv = project_linf(x_adv + alpha * grad.sign(), x, eps, ctx.clip)
        ctx.iterations.fill_(step + 1)
        if not ctx.report(step + 1, steps, x_adv=x_adv):
            ctx.keep(step=step + 1, x_adv=x_adv, momentum=momentum)
            break
    return x_adv


def fgsm(ctx: Context, eps: float) -> torch.Tensor:
    # One step: a stopped FGSM keeps nothing and a resume runs it again.
    grad = loss_gradient(ctx, ctx.x)
    ctx.iterations.fill_(1)
    ctx.report(1, 1)
    return ctx.x + eps * grad.sign()


def bim(ctx: Context, eps: float, alpha: float | None, steps: int) -> torch.Tensor:
    return sign_iterations(ctx, eps, alpha, steps)


def pgd(ctx: Context, eps: float, alpha: float | None, steps: int, random_start: bool) -> torch.Tensor:
    alpha = PGD_ALPHA_FACTOR * eps / steps if alpha is None else alpha
    return sign_iterations(ctx, eps, alpha, steps, random_start=random_start)


def mifgsm(ctx: Context, eps: float, alpha: float | None, steps: int, decay: float) -> torch.Tensor:
    return sign_iterations(ctx, eps, alpha, steps, decay=decay)


SPECS = [
    AttackSpec(
        "fgsm",
        "FGSM",
        fgsm,
        (EPS,),
        norm="linf",
        targeted=True,
        one_step=True,
        reference="Goodfellow et al. 2015, Explaining and Harnessing Adversarial Examples",
        summary="one step of size ε along the sign of the loss gradient",
    ),
    AttackSpec(
        "bim",
        "BIM / I-FGSM (ITCM when targeted)",
        bim,
        (EPS, ALPHA, STEPS),
        norm="linf",
        targeted=True,
        reference="Kurakin et al. 2017, Adversarial Examples in the Physical World",
        summary="K small sign-gradient steps, projected to the ε-ball and [0, 1] after each",
    ),
    AttackSpec(
        "pgd",
        "PGD (TPGD when targeted)",
        pgd,
        (EPS, ALPHA_PGD, STEPS, RANDOM_START),
        norm="linf",
        targeted=True,
        reference="Madry et al. 2018, Towards Deep Learning Models Resistant to Adversarial Attacks",
        summary="BIM from a uniformly random start in the ε-ball (seeded)",
    ),
    AttackSpec(
        "mifgsm",
        "MI-FGSM (TMIFGSM when targeted)",
        mifgsm,
        (EPS, ALPHA, STEPS, DECAY),
        norm="linf",
        targeted=True,
        reference="Dong et al. 2018, Boosting Adversarial Attacks with Momentum",
        summary="BIM whose step follows an accumulated, L1-normalised gradient (momentum μ)",
    ),
]
