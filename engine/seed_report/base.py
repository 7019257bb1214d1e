"""What a seed check is, what it hands back, and the registry the report runs through.

A check is one claim of a source paper that the engine can test on one model: its name, the paper and the
claim, the paper's figure in words, why it may not apply to a model, and a function that runs it at report
size (or tiny size, for tests) and returns a `Section`: tables with the paper's number beside ours, figures,
the settings used and notes. The renderer draws every Section the same way, so adding a check is writing
its function and one `register(Check(...))` line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine import domains, progress


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list]  # cells: str, int, float (shown with 3 significant digits) or None (shown as —)


@dataclass
class Figure:
    title: str
    png: bytes | None = None  # a picture, embedded as a data: URL
    svg: str | None = None  # a chart, inlined; built by engine.seed_report.svg, which escapes its text
    caption: str = ""


@dataclass
class Section:
    """One check's result. `complete` is False where the run was stopped: the runner then leaves it out."""

    settings: dict
    headline: str  # ours beside the paper's, in one line, for the report's summary table
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    complete: bool = True


@dataclass
class Context:
    """What a check runs with: the model, the size, the seed and the progress callback (engine.progress)."""

    model: object
    tiny: bool = False
    seed: int = 0
    progress_to: progress.Callback | None = None
    blacks: tuple = ()  # black-box models the user gave (their own, of the model's classes); default: the domain's
    stopped: bool = False  # the user cancelled: whatever the check returns now is cut short

    @property
    def callback(self) -> progress.Callback | None:
        """The callback to hand the engine's operations: it relays to `progress_to` and remembers a cancel."""
        return None if self.progress_to is None else self._relay

    def _relay(self, step: float, total: int, state: dict | None = None) -> bool:
        if self.stopped or self.progress_to(step, total, state or {}) is False:
            self.stopped = True
        return not self.stopped

    @property
    def domain(self) -> domains.Domain:
        return domains.of(self.model)

    @property
    def photos(self) -> bool:
        """Inputs larger than 64 px: the photo budgets (fewer images, copies and steps)."""
        return max(self.model.input_size[1:]) > 64

    def size(self, tiny, small, photos):
        """The setting for this run: tests' tiny one, else the small-image or the photo one."""
        return tiny if self.tiny else photos if self.photos else small

    def images(self, n: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """The first n of the domain's labelled images (a user's own, given with their model), with their keys."""
        from engine.analysis.target_images import evaluation_split

        (x, y), _ = evaluation_split(self.model, min(n, self.domain.capacity()) or n)
        keys = self.domain.image_keys()[: x.shape[0]]
        return x.to(self.model.device), y.to(self.model.device), keys

    def others(self, role: str) -> list:
        """The other models in `role`: "judges" (held-out black boxes: the user's, else the domain's) or
        "sources" (the domain's source models); registered names, or the user's loaded models."""
        if role == "judges" and self.blacks:
            return list(self.blacks)
        from engine import models

        usable = {r["name"] for r in models.available() if r["available"]}
        return [n for n in getattr(self.domain, role) if n != self.model.name and n in usable]

    def load(self, items: list) -> list:
        """Models from `others`: names are loaded on the model's device, the user's models pass as they are."""
        from engine import models

        return [models.load(m, device=self.model.device) if isinstance(m, str) else m for m in items]

    def go(self, step: float, total: int) -> bool:
        """Report progress between a check's own parts; False once the user cancelled."""
        return self.callback is None or self._relay(step, total)


@dataclass(frozen=True)
class Check:
    name: str  # a short id: --checks NAME, the section's anchor
    title: str
    seed: str  # which source document and where in it
    claim: str  # what the paper says, in one sentence
    paper: str  # the paper's figure(s), as the summary table shows them
    run: Callable[[Context], Section]
    needs: Callable[[Context], str | None] = lambda ctx: None  # why it does not apply to ctx.model, None if it does
    # CPU seconds at report size (small images, photos), measured with one thread: what the app's gate shows.
    seconds: tuple[float, float] = (60.0, 120.0)


CHECKS: list[Check] = []


def register(check: Check) -> Check:
    if any(c.name == check.name for c in CHECKS):
        raise ValueError(f"a seed check named {check.name!r} is already registered")
    CHECKS.append(check)
    return check


def why_not(check: Check, ctx: Context) -> str | None:
    """Why `check` does not apply to ctx.model (a domain without labelled images applies to none)."""
    if not ctx.domain.has_images:
        return "needs labelled images of the model's classes: give them with --data DIR (or upload a .zip)"
    return check.needs(ctx)


# ---- the requirements checks share ---------------------------------------------------------------------------


def needs_layers(ctx: Context) -> str | None:
    why = ctx.model.layers_unavailable
    return f"needs the model's layers (Grad-CAM, features): {why}" if why else None


def needs_few_classes(ctx: Context, most: int = 20) -> str | None:
    k = len(ctx.model.class_names)
    return (
        None
        if k <= most
        else f"attacks every image towards each of the other {k - 1} classes: {most} classes at most at report size"
    )


def needs_judges(ctx: Context) -> str | None:
    return (
        None
        if ctx.others("judges")
        else "needs a held-out model of the same classes (--black, or a built-in domain's judges) to judge the attack"
    )


def pct(v, digits: int = 1) -> float | None:
    """A share as a percentage, rounded for the tables (None stays None: shown as —)."""
    return None if v is None else round(100 * v, digits)
