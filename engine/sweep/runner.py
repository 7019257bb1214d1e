"""One sweep job: its adversarial images on the white-box model, scored on every black-box model.

A job's rows hold the transfer metrics (error, uTR, tSuc, tTR over the images both models classify
correctly) and the perturbation sizes (mean L2 and L∞ of x_adv − x), one row per black-box model.
"""

from __future__ import annotations

import json
import os
import socket
import time

import torch

from engine import attacks, targets
from engine.analysis.transfer import METHODS, adversarial, clean_labels, score_blacks
from engine.attacks.activation import layer_name
from engine.metrics import norms
from engine.sweep import cache
from engine.sweep.grid import Job

BATCH = 250  # images per attack call inside a job, as engine.analysis.transfer.evaluate does


def run_job(job: Job, attempt: int = 1) -> list[dict]:
    """One job's tidy rows, one per black-box model: transfer metrics and perturbation sizes."""
    started = time.perf_counter()
    loaded = [cache.model(name, job.device) for name in (job.white, *job.blacks)]
    white, blacks = loaded[0][0], [model for model, _ in loaded[1:]]
    loads = sum(count for _, count in loaded)
    imageset = cache.image_set(white, job.images, job.device, job.data)
    x, y = imageset.x[job.start : job.stop], imageset.y[job.start : job.stop]
    spec = attacks.get(METHODS.get(job.attack, (job.attack, {}))[0])
    target, bank = None, (imageset.bank_x, imageset.bank_y)
    if job.attack in METHODS or not spec.untargeted:
        # Drawn over the whole image set, then sliced: a shard's targets do not depend on the shard size,
        # and shards do not all replay the same random stream.
        # Not target_images.decide: it chooses from one call's images by a rule, not one seeded draw over the set.
        target = targets.random_classes(imageset.y, white.num_classes, job.seed, allowed=imageset.bank_y)[
            job.start : job.stop
        ]
    if spec.needs_target_images:
        bank = cache.bank(white, white.layer(layer_name(white, job.layer)).index, job.images, imageset)
    if spec.one_step and job.eps is not None:
        x_adv, params = attacks.at_budgets(x, _direction(job, white, x, y, target, bank), [job.eps])[0], {}
    else:
        x_adv, target, params = _attack(job, white, x, y, target, bank)
    size = norms(x_adv - x)
    shard = (job.white, tuple(job.blacks), job.device, job.data, job.images, job.start, job.stop)
    clean = cache.clean_labels(shard, lambda: clean_labels(white, blacks, x))
    rows = [
        {
            **_identity(job, black.name, attempt),
            **metrics,
            "layer": params.get("layer"),
            "l2": float(size["l2"].mean()),
            "linf": float(size["linf"].mean()),
            "loads": loads,
        }
        for black, metrics in zip(blacks, score_blacks(white, blacks, x, y, x_adv, target, clean))
    ]
    seconds = time.perf_counter() - started
    return [{**row, "seconds": seconds} for row in rows]


def _direction(job: Job, white, x, y, target, bank) -> torch.Tensor:
    """The shard's one-step direction d (its image at ε is clip(x + ε·d)), made once for all the grid's ε by the
    same batched run as any job, at ε = 1."""
    key = (job.attack, job.white, job.device, job.data, job.images, job.start, job.stop, job.seed, job.params)

    def make() -> torch.Tensor:
        x_adv, _, _ = _attack(job, white, x, y, target, bank, eps=1.0)
        return (x_adv - x).sign()

    return cache.direction(key, make)


def _attack(job: Job, white, x, y, target, bank, **override):
    """The job's attack on the shard, batched, with `override` on top of its parameters."""
    params = {**job.attack_params(), **override}
    return adversarial(
        white, job.attack, x, y, target=target, seed=job.seed, batch=BATCH, bank=bank, layer=job.layer, **params
    )


def _identity(job: Job, black: str, attempt: int) -> dict:
    """The columns that say which measurement a row is, shared by finished and failed rows."""
    return {
        "job": job.key,
        "status": "ok",
        "attack": job.attack,
        "white": job.white,
        "black": black,
        "domain": job.domain,
        "eps": job.eps,
        "layer": job.layer,
        "steps": job.steps,
        "params": json.dumps(dict(job.params), sort_keys=True),
        "seed": job.seed,
        "shard": job.shard,
        "start": job.start,
        "stop": job.stop,
        "images": job.stop - job.start,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "attempt": attempt,
    }


def failed_rows(job: Job, attempt: int, message: str) -> list[dict]:
    """What a job that used up its retries leaves in the table: its identity and the reason."""
    return [
        {**_identity(job, black, attempt), "status": "failed", "worker": None, "message": message}
        for black in job.blacks
    ]


def describe_error(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
