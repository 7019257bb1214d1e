"""APGD, L∞ (Croce & Hein 2020): PGD whose step size halves by itself, with momentum.

Each example starts at a uniform random point of the ε-ball scaled so that its largest
coordinate is ±ε (the authors' start), takes a first step of size 2ε and then steps

    z = P(x + η·sign(∇)),  x ← P(x + α(z − x) + (1 − α)(x − x_prev)),  α = 0.75

At checkpoints w_j (the fractions p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)
of the steps) an example halves η and goes back to its best point when the loss rose in at most
a fraction ρ of the steps since the last checkpoint, or when neither η nor the best loss changed
since then. Step sizes, checkpoints and restarts are per example, all in one batch. An example
leaves the batch at the step that fools the model by a margin other arithmetic keeps
(`margins.robust`), with that point as its result (the authors' code keeps stepping it and returns
its last fooling point: the same success, at the cost of every step), and a restart attacks only
the examples no earlier run fooled.

The loss is cross-entropy or DLR, the difference of logits ratio, which is invariant to the
logits' scale. Targeted, CE goes towards the target and DLR is the paper's targeted ratio
(z_t − z_y) / (z_π1 − (z_π3 + z_π4)/2). `apgd_run` is the loop itself, for attacks that run APGD
on some rows with their own targets (AutoAttack).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.attacks.base import AttackSpec, Context, Param
from engine.attacks.margins import robust
from engine.attacks.params import EPS

MOMENTUM = 0.75
# The loop's state per live row, which leaves the batch with its row once that row fooled the model.
LIVE = (
    "live",
    "lower",
    "upper",
    "x_adv",
    "x_old",
    "grad",
    "eta",
    "x_best",
    "grad_best",
    "loss_best",
    "loss_prev",
    "last_best",
    "reduced",
    "rises",
)
LOSSES = ("ce", "dlr")

STEPS = Param("steps", int, 100, 1, 10000, "iterations per restart (100 in the paper)")
LOSS = Param(
    "loss",
    str,
    "ce",
    choices=LOSSES,
    help="ce: cross-entropy; dlr: difference of logits ratio, unchanged when the logits are rescaled",
)
RESTARTS = Param("restarts", int, 1, 1, 100, "random restarts; each attacks only the images not yet fooled")
RHO = Param("rho", float, 0.75, 0.0, 1.0, "ρ: halve the step when the loss rose in at most this share of the steps")


def apgd_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss: str = "ce") -> torch.Tensor:
    """Per example, the loss APGD ascends: CE or DLR away from `y`, or towards `target` when given."""
    if loss == "ce":
        return (
            -F.cross_entropy(logits, target, reduction="none")
            if target is not None
            else F.cross_entropy(logits, y, reduction="none")
        )
    ordered = logits.topk(min(4, logits.shape[1]), dim=1).values
    last = ordered.shape[1] - 1
    # With fewer classes than the ratio names, the smallest logit stands in for the missing ones.
    top, third, fourth = ordered[:, 0], ordered[:, min(2, last)], ordered[:, min(3, last)]
    own = logits.gather(1, y[:, None]).squeeze(1)
    if target is not None:
        goal = logits.gather(1, target[:, None]).squeeze(1)
        return (goal - own) / (top - 0.5 * (third + fourth) + 1e-12)
    # The largest other logit: the runner-up when y is on top, else the top one.
    other = torch.where(ordered[:, 0] == own, ordered[:, 1], ordered[:, 0])
    return -(own - other) / (top - third + 1e-12)


def checkpoint_lengths(steps: int) -> tuple[int, int, int]:
    """(first interval, its decrement, the shortest): p₁ = 0.22, shrinking by 0.03 to at least 0.06 of the steps.

    In whole steps as the authors' code rounds them, so that short runs still check at least every step."""
    return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)


@dataclass
class Outcome:
    """What `apgd_run` found for its rows (in the order of `rows`)."""

    x_adv: torch.Tensor  # fooled rows: the last iterate that fooled; the others: their highest-loss point
    fooled: torch.Tensor  # bool per row
    loss: torch.Tensor  # the best loss per row (of the run that gave x_adv)
    kept: dict | None = None  # the loop state when the callback stopped it: pass it back as `state`


def apgd_run(
    ctx: Context,
    eps: float,
    steps: int,
    loss: str = "ce",
    restarts: int = 1,
    rho: float = 0.75,
    *,
    rows: torch.Tensor | None = None,
    target: torch.Tensor | None = None,
    state: dict | None = None,
    done: int = 0,
    total: int | None = None,
    image: torch.Tensor | None = None,
) -> Outcome:
    """APGD on the batch rows `rows` (default all) of `ctx`, targeted when `target` (one per batch row) is given.

    Each step is one forward and one backward of the active rows (plus one per restart for its start).
    Progress goes to `ctx.report(done + step, total)` (total defaults to steps × restarts) with the
    batch `image` (default `ctx.x`) whose `rows` hold the current results; `ctx.iterations[rows]`
    counts the steps each row took. When the callback stops the run, the result so far comes back with
    `kept`: the caller saves it (`ctx.keep(..., apgd=kept)`) and passes it as `state` to carry on.
    Success is `ctx`'s: the target class when targeted, any other class than `ctx.y` otherwise.
    """
    x_all = ctx.x
    rows = torch.arange(x_all.shape[0], device=x_all.device) if rows is None else rows.to(x_all.device)
    total = steps * restarts if total is None else total
    x, y = x_all[rows], ctx.y[rows]
    goal = target[rows] if target is not None else None
    m = rows.numel()
    lower, upper = ctx.clamp(x - eps), ctx.clamp(x + eps)
    first_k, shrink, shortest = checkpoint_lengths(steps)

    def project_(v, lo, hi):
        return torch.minimum(torch.maximum(v, lo, out=v), hi, out=v)

    def gradient(v, idx):
        with torch.enable_grad():
            v = v.detach().requires_grad_(True)
            logits = ctx.logits(v, rows[idx])
            values = apgd_loss(logits, y[idx], goal[idx] if goal is not None else None, loss)
            grad = torch.autograd.grad(values.sum(), v)[0]
        pred = logits.detach().argmax(1)
        hit = pred == goal[idx] if goal is not None else pred != y[idx]
        firm = robust(logits, goal[idx] if goal is not None else y[idx], goal is not None)
        return values.detach(), grad.detach(), hit, firm

    if state is not None:
        restart, fooled, x_res, loss_res = state["restart"], state["fooled"], state["x_res"], state["loss_res"]
        run = state["run"]
    else:
        restart, run = 0, None
        fooled = torch.zeros(m, dtype=torch.bool, device=x.device)
        x_res, loss_res = x.clone(), torch.full((m,), -float("inf"), device=x.device)

    def best(r):
        """The run's best point and loss per row of its `idx`: retired rows' as they left, live rows' as they are."""
        x_best, loss_best = r["x_best_all"].clone(), r["loss_best_all"].clone()
        x_best[r["live"]], loss_best[r["live"]] = r["x_best"], r["loss_best"]
        return x_best, loss_best

    def preview(r):
        """Every row's result so far: earlier restarts merged with the current run `r`."""
        out = x_res.clone()
        if r is not None:
            idx = r["idx"]
            x_best, loss_best = best(r)
            better = loss_best > loss_res[idx]
            out[idx] = torch.where(
                r["fooled"].view(-1, 1, 1, 1),
                r["x_best_adv"],
                torch.where(better.view(-1, 1, 1, 1), x_best, x_res[idx]),
            )
        full = (x_all if image is None else image).clone()
        full[rows] = out
        return full, out

    def record(r, x_now, hit):
        """Rows that fool the model at `x_now` count as fooled, with `x_now` as their result (the latest such)."""
        if bool(hit.any()):
            seen = r["live"][hit]
            r["x_best_adv"][seen], r["fooled"][seen] = x_now[hit], True

    def retire(r, firm):
        """Rows that fool the model by a margin other arithmetic keeps (margins.robust) leave the batch with the
        point `record` kept: more steps would only trade one such point for another, so they cost no pass from
        here on. A row fooled by less keeps stepping, further across. (`firm` rows are among `record`'s hits.)"""
        if not bool(firm.any()):
            return
        gone = r["live"][firm]
        r["x_best_all"][gone], r["loss_best_all"][gone] = r["x_best"][firm], r["loss_best"][firm]
        stay = ~firm
        for key in LIVE:
            r[key] = r[key][stay]

    while restart < restarts:
        if run is None:
            idx = (~fooled).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xi = x[idx]
            t = 2.0 * ctx.rand(*xi.shape) - 1.0
            scale = t.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            x_adv = ctx.clamp(xi + eps * t / scale)
            values, grad, hit, firm = gradient(x_adv, idx)
            run = {
                "idx": idx,
                "step": 0,
                # Per row of idx: the result of a row that fooled, and the best point and loss it left with.
                "x_best_adv": x_adv.clone(),
                "fooled": torch.zeros(idx.numel(), dtype=torch.bool, device=x.device),
                "x_best_all": x_adv.clone(),
                "loss_best_all": values.clone(),
                # Per live row (positions `live` in idx), the rows not yet fooled: the loop's state.
                "live": torch.arange(idx.numel(), device=x.device),
                "lower": lower[idx],
                "upper": upper[idx],
                "x_adv": x_adv,
                "x_old": x_adv.clone(),
                "grad": grad,
                "eta": torch.full((idx.numel(), 1, 1, 1), 2.0 * eps, device=x.device),
                "x_best": x_adv.clone(),
                "grad_best": grad.clone(),
                "loss_best": values.clone(),
                # The authors' loss history starts at zero, so their first rise test compares the first step's
                # loss with 0 rather than with the start's: a negative loss (targeted CE, DLR before success)
                # then counts as no rise. Kept, as torchattacks and adv-lib keep it: their success is the
                # reference (with the start's loss, targeted CE fooled ~3 points fewer at 10 steps).
                "loss_prev": torch.zeros_like(values),
                "last_best": values.clone(),
                # The authors' code skips the "nothing changed" test at the first checkpoint.
                "reduced": torch.ones(idx.numel(), dtype=torch.bool, device=x.device),
                "rises": torch.zeros(idx.numel(), dtype=torch.long, device=x.device),
                "since": 0,
                "k": first_k,
            }
            record(run, x_adv, hit)
            retire(run, firm)
        idx = run["idx"]
        for i in range(run["step"], steps):
            if run["live"].numel() == 0:
                break
            x_adv, grad, live = run["x_adv"], run["grad"], run["live"]
            lo, hi = run["lower"], run["upper"]
            a = MOMENTUM if i > 0 else 1.0
            # In place, one buffer: z = P(x + η·sign(∇)), then P(α·z + (1 − α)·x + (1 − α)(x − x_prev)).
            momentum = x_adv - run["x_old"]
            x_new = project_(x_adv.addcmul(run["eta"], grad.sign()), lo, hi)
            x_new = project_(x_new.lerp_(x_adv, 1.0 - a).add_(momentum, alpha=1.0 - a), lo, hi)
            run["x_old"] = x_adv
            values, grad, hit, firm = gradient(x_new, idx[live])
            # Row copies in place: few rows change per step, and a where() would rewrite the whole batch.
            better = values > run["loss_best"]
            run["x_best"][better] = x_new[better]
            run["grad_best"][better] = grad[better]
            run["loss_best"] = torch.where(better, values, run["loss_best"])
            run["rises"] += values > run["loss_prev"]
            run["loss_prev"] = values
            run["since"] += 1
            if run["since"] == run["k"]:
                # Condition 1 as the authors' code tests it (≤ ρ·k rises); condition 2: η and the best loss stood.
                halve = (run["rises"] <= run["k"] * rho) | (~run["reduced"] & (run["last_best"] >= run["loss_best"]))
                run["reduced"], run["last_best"] = halve, run["loss_best"].clone()
                back = halve.view(-1, 1, 1, 1)
                run["eta"] = torch.where(back, run["eta"] / 2.0, run["eta"])
                x_next = torch.where(back, run["x_best"], x_new)
                grad = torch.where(back, run["grad_best"], grad)
                run["rises"] = torch.zeros_like(run["rises"])
                run["since"], run["k"] = 0, max(run["k"] - shrink, shortest)
            else:
                x_next = x_new
            run["x_adv"], run["grad"], run["step"] = x_next, grad, i + 1
            ctx.iterations[rows[idx[live]]] += 1
            record(run, x_new, hit)
            retire(run, firm)
            # The merged picture costs a copy of the batch per step: made only where a callback shows it.
            full = preview(run)[0] if ctx.callback is not None else None
            # A run ends early once every row fooled the model: its steps are the most it takes.
            if not ctx.report(done + restart * steps + i + 1, total, x_adv=full, upper_bound=True):
                _, out = preview(run)
                kept = {"restart": restart, "fooled": fooled, "x_res": x_res, "loss_res": loss_res, "run": run}
                merged_fooled = fooled.clone()
                merged_fooled[idx] |= run["fooled"]
                merged_loss = loss_res.clone()
                merged_loss[idx] = torch.maximum(loss_res[idx], best(run)[1])
                return Outcome(out, merged_fooled, merged_loss, kept)
        _, x_res = preview(run)
        # A fooled row keeps that run's loss; otherwise the best over the runs.
        run_loss = best(run)[1]
        loss_res = loss_res.clone()
        loss_res[idx] = torch.where(run["fooled"] | (run_loss > loss_res[idx]), run_loss, loss_res[idx])
        fooled = fooled.clone()
        fooled[idx] |= run["fooled"]
        restart, run = restart + 1, None
    return Outcome(x_res, fooled, loss_res)


def apgd(ctx: Context, eps: float, steps: int, loss: str, restarts: int, rho: float) -> torch.Tensor:
    state = ctx.resume["apgd"] if ctx.resume else None
    outcome = apgd_run(ctx, eps, steps, loss, restarts, rho, target=ctx.target, state=state)
    if outcome.kept is not None:
        ctx.keep(apgd=outcome.kept)
    return outcome.x_adv


SPEC = AttackSpec(
    "apgd",
    "APGD (APGD-T when targeted)",
    apgd,
    (EPS, STEPS, LOSS, RESTARTS, RHO),
    norm="linf",
    targeted=True,
    stops_early=True,  # a step runs only on the images still unfooled, none once all are
    # One forward and backward per step, plus one at each restart's random start.
    work=lambda v, shape: float((v["steps"] + 1) * v["restarts"]),
    reference="Croce & Hein 2020, Reliable evaluation of adversarial robustness with an ensemble of diverse "
    "parameter-free attacks",
    summary="PGD with momentum whose step size halves at checkpoints when the loss stops rising; CE or DLR loss",
)
