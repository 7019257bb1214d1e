"""What every bench script shares: timing to completion, medians with their spread, common flags."""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed(fn):
    """(seconds, result) of `fn()`, waiting for queued GPU work on both sides: CUDA calls return early."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def spread(values: list[float]) -> dict:
    return {"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values), "n": len(values)}


def parser(doc: str, repeats: int, quick_help: str | None = None, device: bool = True) -> argparse.ArgumentParser:
    """--repeats, --quick (CI smoke mode), --json and, where the script can use a GPU, --device."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--json", action="store_true")
    if device:
        p.add_argument("--device", default="cpu")
    return p
