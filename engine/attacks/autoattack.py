"""AutoAttack, standard version, L∞ (Croce & Hein 2020): four attacks in turn, each on the images still unfooled.

APGD-CE, then APGD-T (targeted DLR towards each of the clean image's n highest other
classes in turn), then FAB-T (towards the same classes), then Square with p_init 0.8.
An image counts as fooled by the first stage whose image, projected to ε, is
misclassified, and keeps that image; the later stages never see it. Success is
misclassification throughout, targeted stages included, as in the authors' code:
a target only steers the search (APGD-T returns the iterate that reached its
target, else its highest-loss point; either counts once misclassified). The robust
accuracy after each stage is recorded in `Context.stages` (so `AttackResult.stages`).

Each stage runs on a sub-batch context (`_Stage`) whose model answers with the
parent's rows, so row-wise models, progress, cancel and resume all go through
the parent: one bar over every stage's steps, an upper bound since a stage runs
only while some image is unfooled.
"""

from __future__ import annotations

import time

import torch

from engine.attacks import apgd, fab, square
from engine.attacks.base import FORWARD_PASS, AttackSpec, Context, Param
from engine.attacks.params import EPS
from engine.attacks.projections import project_linf

STEPS = Param("steps", int, 100, 1, 1000, "iterations of each APGD and FAB run (100 in the paper)")
N_TARGET_CLASSES = Param(
    "n_target_classes", int, 9, 1, 999, "APGD-T and FAB-T aim in turn at this many of the highest other classes"
)
N_QUERIES = Param("n_queries", int, 5000, 2, 100000, "Square's query budget per image (5,000 in the paper)")
SQUARE_P_INIT = 0.8  # the authors' Square setting inside AutoAttack (torchattacks' too)

STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")


class _Rows:
    """The parent's model seen from a sub-batch: sub-row i is the parent's row `rows[i]`."""

    rowwise = True

    def __init__(self, parent: Context, rows: torch.Tensor):
        self.parent, self.rows = parent, rows

    def __call__(self, inputs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        return self.parent.logits(inputs, self.rows if rows is None else self.rows[rows])


class _Stage(Context):
    """A stage's context: success is any misclassification, whatever target steers the stage."""

    def reached(self, pred: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        return pred != (self.y if idx is None else self.y[idx])


def _plan(n_target: int, stages: tuple[str, ...]) -> list[tuple[str, int]]:
    """(stage, target rank) per run: rank 2 is the clean image's second-highest class, and so on."""
    ranks = range(2, n_target + 2)
    plan = [("apgd-ce", 0), *[("apgd-t", r) for r in ranks], *[("fab-t", r) for r in ranks], ("square", 0)]
    return [(name, rank) for name, rank in plan if name in stages]


def autoattack(
    ctx: Context, eps: float, steps: int, n_target_classes: int, n_queries: int, stages: tuple[str, ...] = STAGES
) -> torch.Tensor:
    """The standard suite; `stages` runs only some of it, in the same order (tests check FAB-T alone)."""
    x, y = ctx.x, ctx.y
    if ctx.resume:
        state = ctx.resume
        order, out, robust, records = state["order"], state["out"], state["robust"], state["records"]
        first, done = state["run"], state["done"]
    else:
        with torch.no_grad():
            logits = ctx.logits(x)
        order = logits.sort(dim=1).indices  # ascending: the target of rank r is column −r
        robust = logits.argmax(1) == y
        out = x.clone()
        records = [{"stage": "clean", "robust_accuracy": float(robust.float().mean()), "seconds": 0.0}]
        first, done, state = 0, 0, {}
    n_target = min(n_target_classes, order.shape[1] - 1)
    plan = _plan(n_target, stages)
    budgets = {"apgd-ce": steps, "apgd-t": steps * n_target, "fab-t": steps * n_target, "square": n_queries - 1}
    total = sum(budgets[name] for name in stages)
    ctx.stages = records

    for run in range(first, len(plan)):
        name, rank = plan[run]
        resuming = ctx.resume is not None and run == first and state.get("sub") is not None
        if resuming:
            rows, base, seconds = state["rows"], state["base"], state["seconds"]
        else:
            rows, base, seconds = robust.nonzero().squeeze(1), None, 0.0
            if rows.numel() == 0:
                break
            base = ctx.iterations[rows].clone()
        target = order[rows, -rank] if rank else None
        last = [state["reached"] if resuming else done]  # the last step reported: the next stage goes on from it

        def forward(step, _total, report, rows=rows, offset=done, last=last):
            last[0] = offset + step
            if ctx.callback is None:  # nobody watches: no merged picture to make
                return True
            preview = out.clone()
            preview[rows] = report["x_adv"]
            return ctx.report(offset + step, total, x_adv=preview, upper_bound=True)

        stage = _Stage(
            model=_Rows(ctx, rows),
            x=x[rows],
            y=y[rows],
            target=target,
            generator=ctx.generator,
            callback=forward,
            clip=ctx.clip,
            resume=state["sub"] if resuming and name in ("fab-t", "square") else None,
        )
        if resuming:
            stage.iterations, stage.queries = state["sub_iterations"], state["sub_queries"]
        start = time.perf_counter()
        kept = None
        if name in ("apgd-ce", "apgd-t"):
            loss = "ce" if name == "apgd-ce" else "dlr"
            outcome = apgd.apgd_run(
                stage, eps, steps, loss, 1, apgd.RHO.default, target=target, state=state["sub"] if resuming else None
            )
            x_stage, kept = outcome.x_adv, outcome.kept
        elif name == "fab-t":
            x_stage = fab.fab(stage, eps, steps, 1, fab.ALPHA_MAX.default, fab.ETA.default, fab.BETA.default)
            kept = stage.kept
        else:
            x_stage = square.square(stage, eps, n_queries, SQUARE_P_INIT)
            kept = stage.kept
        seconds += time.perf_counter() - start
        ctx.iterations[rows] = base + stage.iterations
        x_stage = project_linf(x_stage, x[rows], eps, ctx.clip)
        if stage.stopped_early:
            ctx.keep(
                order=order,
                out=out,
                robust=robust,
                records=records,
                run=run,
                done=done,
                reached=last[0],
                rows=rows,
                base=base,
                seconds=seconds,
                sub=kept,
                sub_iterations=stage.iterations,
                sub_queries=stage.queries,
            )
            preview = out.clone()
            preview[rows] = x_stage
            return preview
        done = last[0]
        with torch.no_grad():
            fooled = ctx.logits(x_stage, rows).argmax(1) != y[rows]
        out[rows[fooled]] = x_stage[fooled]
        robust[rows[fooled]] = False
        # Runs of one stage (one per target class) add up to one record, the robust accuracy after the stage.
        if records[-1]["stage"] == name:
            records[-1]["seconds"] += seconds
            records[-1]["robust_accuracy"] = float(robust.float().mean())
        else:
            records.append({"stage": name, "robust_accuracy": float(robust.float().mean()), "seconds": seconds})
        state = {}
    # Stages no image reached leave the accuracy where it was.
    for name in stages:
        if all(r["stage"] != name for r in records):
            records.append({"stage": name, "robust_accuracy": float(robust.float().mean()), "seconds": 0.0})
    return out


def _work(v: dict, shape) -> float:
    n_target = v["n_target_classes"]
    apgd_passes = (v["steps"] + 1) * (1 + n_target)
    # FAB-T: a forward, one backward and a forward per step.
    fab_passes = n_target * v["steps"] * 4 * FORWARD_PASS
    return apgd_passes + fab_passes + v["n_queries"] * FORWARD_PASS


SPEC = AttackSpec(
    "autoattack",
    "AutoAttack (standard)",
    autoattack,
    (EPS, STEPS, N_TARGET_CLASSES, N_QUERIES),
    norm="linf",
    targeted=False,
    stops_early=True,
    averageable=False,  # FAB-T's box projection assumes iterates in [0, 1]
    work=_work,
    reference="Croce & Hein 2020, Reliable evaluation of adversarial robustness with an ensemble of diverse "
    "parameter-free attacks",
    summary="APGD-CE, APGD-T, FAB-T and Square in turn, each on the images the earlier ones left unfooled",
)
