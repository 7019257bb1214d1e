"""The attack protocol (docs/ARCHITECTURE.md, attacks).

An attack is an `AttackSpec`: a name, its declared parameters and a function
`fn(ctx, **params) -> x_adv`. `run()` validates the parameters, fixes labels,
targets and randomness, calls the function and then `finalize()`s: the budget
projection and [0, 1] clamp happen there, once, whatever the attack returned.

A run its callback stops keeps a checkpoint: the attack saves its loop state
(`Context.keep`), the runner adds the generator and counters, and `resume_run`
carries the loop on from there (`Context.resume`), step for step as if never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from engine import precision, progress
from engine.attacks.projections import clamp_unit, project_linf

Callback = progress.Callback

# A pass is one forward plus one backward of one image; a backward costs about two forwards.
FORWARD_PASS = 1 / 3


def steps_work(values: dict, shape: tuple[int, ...]) -> float:
    """Passes per image of an attack that takes one gradient per step (one step when it has no `steps`)."""
    return float(values.get("steps", 1))


@dataclass(frozen=True)
class Param:
    """A declared attack parameter; the UI renders a form widget from it."""

    name: str
    kind: type  # float, int, bool, or str (one of `choices`)
    default: Any  # None means "derived from others" (see help)
    low: float | None = None
    high: float | None = None
    help: str = ""
    low_open: bool = False  # the range excludes `low` (e.g. a step size must be > 0)
    choices: tuple[str, ...] = ()  # the values a str parameter takes (a loss, a method)

    def check(self, value: Any) -> Any:
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"parameter {self.name!r} needs a value")
        if self.kind is str:
            if isinstance(value, str) and value.strip().lower() in self.choices:
                return value.strip().lower()
            raise ValueError(f"parameter {self.name!r} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError(f"parameter {self.name!r} must be true or false, got {value!r}")
        if isinstance(value, bool):
            raise ValueError(f"parameter {self.name!r} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name!r} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"parameter {self.name!r} must be finite, got {value!r}")
        if self.kind is int:
            if number != int(number):
                raise ValueError(f"parameter {self.name!r} must be a whole number, got {value!r}")
            number = int(number)
        too_low = self.low is not None and (number <= self.low if self.low_open else number < self.low)
        too_high = self.high is not None and number > self.high
        if too_low or too_high:
            raise ValueError(f"parameter {self.name!r}={value!r} is outside its range {self.range_text()}")
        return number

    def range_text(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low}, {self.high}]"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "type": self.kind.__name__,
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "low_open": self.low_open,
            "choices": list(self.choices),
            "help": self.help,
        }


@dataclass(frozen=True)
class AttackSpec:
    name: str
    title: str
    fn: Callable[..., torch.Tensor]
    params: tuple[Param, ...]
    norm: str  # "linf": projected to the eps ball; "l2"/"min": unbounded minimal-perturbation attacks
    targeted: bool  # a targeted variant exists
    untargeted: bool = True
    uses_gradients: bool = True
    needs_target_images: bool = False  # feature-level attacks steer towards given images (AA)
    needs_layers: bool = False  # hooks a layer (AA's features, Mask-FGSM's heat map): not on a model that hides them
    averageable: bool = True  # only talks to the model through Context.logits, so averaging can batch it
    reference: str = ""
    summary: str = ""
    # (resolved parameters, image shape C×H×W) → passes per image, at most: what engine.cost prices.
    work: Callable[[dict, tuple[int, ...]], float] = steps_work
    stops_early: bool = False  # the work is an upper bound: the run ends once every image succeeds
    one_step: bool = False  # its image at any ε is clip(x + ε·d) for one direction d (attacks.one_step_direction)

    def describe(self, defaults: dict | None = None) -> dict:
        overrides = defaults or {}
        params = [
            {**p.describe(), **({"default": overrides[p.name]} if p.name in overrides else {})} for p in self.params
        ]
        return {
            "name": self.name,
            "title": self.title,
            "norm": self.norm,
            "targeted": self.targeted,
            "untargeted": self.untargeted,
            "uses_gradients": self.uses_gradients,
            "needs_target_images": self.needs_target_images,
            "needs_layers": self.needs_layers,
            "averageable": self.averageable,
            "reference": self.reference,
            "summary": self.summary,
            "params": params,
        }


@dataclass
class Context:
    """What an attack function gets besides its hyperparameters."""

    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    generator: torch.Generator
    callback: Callback | None
    target_images: torch.Tensor | None = None
    iterations: torch.Tensor = field(init=False)  # per example, filled by the attack
    queries: torch.Tensor | None = None
    stopped_early: bool = False
    # Noisy averaging lets iterates leave [0, 1]: clipping would bias the average towards the image.
    clip: bool = True
    # The loop state a cancelled run kept (`keep`), to start from instead of initialising; None on a fresh run.
    resume: dict | None = None
    kept: dict | None = None  # what `keep` saved when the callback stopped this run
    total: int | None = None  # the `total` of the last report: how far a stopped run had to go
    # An ensemble's record per stage (AutoAttack: robust accuracy after each attack); None for single attacks.
    stages: list[dict] | None = None
    # The mode every forward of the run computes in (engine.precision), and whether a fixed-shape loop runs its
    # compiled step (engine.attacks.compiled) instead of the eager one.
    precision: str = "fp32"
    compile: str = ""  # a torch.compile backend, "" for the eager loop

    def __post_init__(self):
        self.iterations = torch.zeros(self.x.shape[0], dtype=torch.long, device=self.x.device)

    @property
    def targeted(self) -> bool:
        return self.target is not None

    @property
    def labels(self) -> torch.Tensor:
        """The class the loss is about: the target when targeted, else the true label."""
        return self.target if self.target is not None else self.y

    def logits(self, inputs: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The model's logits for `inputs`, which are the batch rows `rows` (default: all, in order).

        Attacks that evaluate a subset or repeated copies of the batch say which rows
        they are, so that a row-wise model (one model and one calibration offset per
        row, see engine.attacks.averaging) answers each with its own model.
        """
        if getattr(self.model, "rowwise", False):
            return self.model(inputs, rows)
        return self.model(inputs)

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0) if self.clip else x

    def reached(self, pred: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Per example (of `idx`, default all): has the attack succeeded with these predictions?"""
        if idx is None:
            return reached(pred, self.y, self.target if self.targeted else None)
        return reached(pred, self.y[idx], self.target[idx] if self.targeted else None)

    def report(self, step: int, total: int, **state) -> bool:
        """Tell the callback; False means stop now and keep what we have.

        The progress protocol: callback(step, total, state) with the state's tensors, plus
        `upper_bound=True` where `total` is only the most steps (the run ends once every image succeeds)."""
        self.total = total
        if self.callback is None:
            return True
        if self.callback(step, total, state) is False:
            self.stopped_early = True
            return False
        return True

    def keep(self, **state) -> None:
        """Save the loop state a stopped attack needs to carry on exactly where it was (`engine.attacks.resume`).

        Called when `report` returned False, with everything the attack's loop reads on its next step; a
        resumed run finds it in `resume`. The generator, `iterations` and `queries` are saved with it by the
        runner, which also restores them on resume."""
        self.kept = copied(state)

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, device=self.x.device)

    def randint(self, high: torch.Tensor | int, shape) -> torch.Tensor:
        """Uniform integers in [0, high) per entry; `high` may be a tensor."""
        return (self.rand(*shape) * high).long()


def loss_gradient(ctx: Context, x_adv: torch.Tensor) -> torch.Tensor:
    """∇ of the batch-mean CE: ascend it untargeted, descend it targeted.

    The sign is folded in here (−CE towards the target), so callers always step *up*
    the gradient. The batch mean only scales each example's gradient by 1/N, which
    sign steps and L1-normalised momentum ignore; it is what torchattacks uses, so
    our iterates agree with it bit for bit rather than up to rounding.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    logits = ctx.logits(x_adv)
    loss = F.cross_entropy(logits, ctx.labels)
    if ctx.targeted:
        loss = -loss
    return torch.autograd.grad(loss, x_adv)[0]


def copied(value):
    """A detached copy of tensors nested in dicts, lists and tuples (an optimiser's `state_dict()` included).

    Checkpoints are copied in and out: an attack updates its tensors in place (Adam's moments, DeepFool's
    iterate), and a stopped result must still resume the same way after another resume of it."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(copied(v) for v in value)
    return value


def reached(pred: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Success, per example: the target class when there is one, any class but y otherwise."""
    return pred == target if target is not None else pred != y


@dataclass
class AttackResult:
    """Everything one attack run produced, per example where it makes sense."""

    attack: str
    params: dict
    x: torch.Tensor
    x_adv: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    logits_clean: torch.Tensor | None  # None when run with score=False (and labels given)
    logits_adv: torch.Tensor | None  # None when run with score=False
    success: torch.Tensor | None
    iterations: torch.Tensor
    queries: torch.Tensor | None
    stopped_early: bool
    seconds: float
    seed: int
    # What `engine.attacks.resume` needs to carry a stopped run on to the end; None once the run finished.
    checkpoint: dict | None = None
    stages: list[dict] | None = None  # `Context.stages`: per stage of an ensemble (AutoAttack), e.g. robust accuracy
    precision: str = "fp32"  # the mode the attack computed in (engine.precision); under `auto` it scored in fp32

    @property
    def delta(self) -> torch.Tensor:
        return self.x_adv - self.x

    @property
    def pred_clean(self) -> torch.Tensor:
        return self.logits_clean.argmax(1)

    @property
    def pred_adv(self) -> torch.Tensor:
        return self.logits_adv.argmax(1)

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    def reached(self, pred: torch.Tensor) -> torch.Tensor:
        """Would these predictions (of another model, or of the saved image) count as this attack's success?"""
        return reached(pred, self.y, self.target)


def finalize(
    spec: AttackSpec,
    ctx: Context,
    x_adv: torch.Tensor,
    params: dict,
    logits_clean,
    seconds: float,
    seed: int,
    score: bool = True,
):
    """Project to the budget and clamp to [0, 1] (always last), then score the result (unless told not to)."""
    x_adv = x_adv.detach()
    if spec.norm == "linf":
        x_adv = project_linf(x_adv, ctx.x, params["eps"])
    else:
        x_adv = clamp_unit(x_adv)
    logits_adv = success = None
    if score:
        with torch.no_grad(), precision.running(scoring_mode(ctx.model, ctx.precision), x_adv.device.type):
            logits_adv = ctx.model(x_adv)
        success = ctx.reached(logits_adv.argmax(1))
    return AttackResult(
        attack=spec.name,
        params=params,
        x=ctx.x,
        x_adv=x_adv,
        y=ctx.y,
        target=ctx.target,
        logits_clean=logits_clean,
        logits_adv=logits_adv,
        success=success,
        iterations=ctx.iterations,
        queries=ctx.queries,
        stopped_early=ctx.stopped_early,
        seconds=seconds,
        seed=seed,
        stages=ctx.stages,
        precision=ctx.precision,
    )


def scoring_mode(model, mode: str) -> str:
    """The mode clean and final predictions are made in: fp32 when the model's precision is `auto`, so that the
    policy's choice of arithmetic never changes which images count as fooled; else the one asked for."""
    return "fp32" if precision.requested(model) == "auto" else mode


def _as_labels(value, n: int, num_classes: int, what: str, device) -> torch.Tensor:
    t = torch.as_tensor(value, device=device)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"{what} must be integer class indices")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"{what} has {t.numel()} entries for a batch of {n}")
    if bool(((t < 0) | (t >= num_classes)).any()):
        raise ValueError(f"{what} must be class indices in 0..{num_classes - 1}")
    return t


def resolve_params(spec: AttackSpec, defaults: dict, params: dict) -> dict:
    """Every declared parameter of `spec`: given, else `defaults` (a model's domain's, `model.attack_defaults`),
    else the declared one; range-checked."""
    known = {p.name for p in spec.params}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{spec.name} has no parameter {unknown[0]!r}; its parameters are {', '.join(sorted(known))}")
    return {p.name: p.check(params.get(p.name, defaults.get(p.name, p.default))) for p in spec.params}


def model_defaults(model) -> dict:
    """The attack parameters a model's domain sets (small grey images need a larger ε); {} for a bare module."""
    return dict(getattr(model, "attack_defaults", None) or {})


def check_seed(seed) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def resolve_labels(
    spec: AttackSpec, num_classes: int, n: int, device, y, target
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validated source labels and targets for a batch of `n`."""
    y = _as_labels(y, n, num_classes, "y", device)
    if target is not None:
        if not spec.targeted:
            raise ValueError(f"{spec.name} has no targeted variant")
        target = _as_labels(target, n, num_classes, "target", device)
        if bool((target == y).any()):
            raise ValueError("target must differ from the source class of every example")
    elif not spec.untargeted:
        raise ValueError(f"{spec.name} needs a target class")
    return y, target


def check_input(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError("x must be a torch tensor of images")
    if x.dim() != 4:
        raise ValueError(f"x must have shape N×C×H×W, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch")
    if not x.dtype.is_floating_point:
        raise ValueError(f"x must be a float tensor in [0, 1], got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ValueError("x must lie in [0, 1]")
    return x.detach()


def execute(
    spec: AttackSpec,
    model,
    x,
    y=None,
    target=None,
    seed=0,
    callback=None,
    target_images=None,
    score=True,
    compile=None,
    **params,
) -> AttackResult:
    """Validate, run and finalize one attack (the body of `engine.attacks.run`).

    `score=False` returns only the adversarial batch (`logits_*` and `success` are None):
    with labels given it costs exactly the attack's own passes, which is what batch
    jobs that score the images themselves (transfer tables, sweeps) want.
    `compile`: run a fixed-shape loop's compiled step (True, or a torch.compile backend name), its eager one
    (False), or let engine.precision decide by device and batch (None).
    """
    x = check_input(x)
    if spec.needs_target_images:
        if target_images is None:
            raise ValueError(f"{spec.name} needs target images (see engine.analysis.target_images.target_images)")
        target_images = check_input(target_images)
        if target_images.shape != x.shape:
            raise ValueError(f"target images have shape {tuple(target_images.shape)}, the batch {tuple(x.shape)}")
    elif target_images is not None:
        raise ValueError(f"{spec.name} does not take target images")
    values = resolve_params(spec, model_defaults(model), params)
    check_seed(seed)
    mode = precision.of_run(model, x)
    backend = precision.compile_backend(compile, x.device.type, x.shape[0], precision.parameter_count(model))

    logits_clean = None
    num_classes = getattr(model, "num_classes", None)
    with torch.no_grad(), precision.running(scoring_mode(model, mode), x.device.type):
        if score or y is None or num_classes is None:
            logits_clean = model(x)
            num_classes = logits_clean.shape[1]
        if target is None and target_images is not None:
            target = model(target_images).argmax(1)  # the class the target images stand for
    y = logits_clean.argmax(1) if y is None else y
    y, target = resolve_labels(spec, num_classes, x.shape[0], x.device, y, target)

    generator = torch.Generator(device=x.device)
    generator.manual_seed(seed)
    ctx = Context(
        model=model,
        x=x,
        y=y,
        target=target,
        generator=generator,
        callback=callback,
        target_images=target_images,
        precision=mode,
        compile=backend,
    )
    return _attack(spec, ctx, values, logits_clean, seed, score, num_classes)


def _attack(
    spec: AttackSpec,
    ctx: Context,
    values: dict,
    logits_clean,
    seed: int,
    score: bool,
    num_classes: int,
    seconds_before: float = 0.0,
) -> AttackResult:
    """Run the attack on a ready context and finalize; a run its callback stopped gets a checkpoint."""
    generator_start = ctx.generator.get_state()
    start = time.perf_counter()
    with precision.running(ctx.precision, ctx.x.device.type):
        x_adv = spec.fn(ctx, **values)
    if ctx.x.device.type == "cuda":
        torch.cuda.synchronize(ctx.x.device)
    seconds = seconds_before + time.perf_counter() - start
    result = finalize(spec, ctx, x_adv, values, logits_clean, seconds, seed, score)
    if ctx.stopped_early:
        # An attack that kept nothing (FGSM's single step) is simply run again: from its starting randomness.
        carried = ctx.kept is not None
        result.checkpoint = copied(
            {
                "state": ctx.kept,
                "generator": ctx.generator.get_state() if carried else generator_start,
                "iterations": ctx.iterations if carried else torch.zeros_like(ctx.iterations),
                "queries": ctx.queries if carried else None,
                "target_images": ctx.target_images,
                "total": ctx.total,
                "seconds": seconds,
                "score": score,
                "num_classes": num_classes,
                "model": getattr(ctx.model, "name", None),
                "precision": ctx.precision,
                "compile": ctx.compile,
            }
        )
    return result


def resume_run(spec: AttackSpec, result: AttackResult, model, callback: Callback | None = None) -> AttackResult:
    """Carry a stopped run on from its checkpoint to the end (the body of `engine.attacks.resume`).

    The loop continues from the step it had reached with the same parameters, images, labels, targets and
    generator state, so the images are those of a run never stopped. The callback's first report is the
    step after the one reached; `seconds` adds up the time before and after."""
    checkpoint = result.checkpoint
    if checkpoint is None:
        raise ValueError("this run finished; nothing to continue")
    name = getattr(model, "name", None)
    if checkpoint["model"] is not None and name is not None and name != checkpoint["model"]:
        raise ValueError(f"this run was on {checkpoint['model']}, not {name}: it continues only on its own model")
    try:
        with torch.no_grad():
            classes = model(result.x[:1]).shape[1]
    except RuntimeError as err:
        shape = tuple(result.x.shape[1:])
        raise ValueError(f"this model does not take the run's images of shape {shape}: {err}") from None
    if classes != checkpoint["num_classes"]:
        raise ValueError(f"this model has {classes} classes; the run was on a model with {checkpoint['num_classes']}")
    generator = torch.Generator(device=result.x.device)
    generator.set_state(checkpoint["generator"])
    ctx = Context(
        model=model,
        x=result.x,
        y=result.y,
        target=result.target,
        generator=generator,
        callback=callback,
        target_images=checkpoint["target_images"],
        resume=copied(checkpoint["state"]),
        # The rest of the run computes as its start did, whatever the batch or the model's setting now.
        precision=checkpoint.get("precision", precision.of_run(model, result.x)),
        compile=checkpoint.get("compile", ""),
    )
    ctx.iterations = checkpoint["iterations"].clone()
    ctx.queries = copied(checkpoint["queries"])
    return _attack(
        spec,
        ctx,
        result.params,
        result.logits_clean,
        result.seed,
        checkpoint["score"],
        checkpoint["num_classes"],
        checkpoint["seconds"],
    )
