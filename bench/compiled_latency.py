"""PGD-10 latency, eager loop against the compiled step (engine.attacks.compiled), one row per (model, batch, way).

    python bench/compiled_latency.py --device cuda              # what bench/gpu.sh runs
    python bench/compiled_latency.py --device cpu --cases fmnist-lenet-0:64 --ways eager aot_eager

Each row says whether the way fooled the same images as the eager loop and how far its images lie from them: the
compiled backends that run the eager kernels must give the eager images; inductor may not (engine.precision).
Rows are printed as they are measured; the build (compile) time is its own column."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine import attacks, datasets, models  # noqa: E402

DEFAULT_CASES = ["efficientnet-lite0:1", "efficientnet-lite0:8", "efficientnet-lite0:64", "fmnist-lenet-0:256"]


def _batch(model, n: int) -> torch.Tensor:
    if model.domain == "fmnist":
        return datasets.fashion_mnist.evaluation_slice(n)[0].to(model.device)
    gen = torch.Generator().manual_seed(0)
    return torch.rand((n, *model.input_size), generator=gen).to(model.device)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model, x, way: str, repeats: int) -> dict:
    compile = {"eager": False, "default": True}.get(way, way)
    run = lambda: attacks.run("pgd", model, x, eps=0.03, steps=10, seed=0, compile=compile)  # noqa: E731
    start = time.perf_counter()
    first = run()
    _sync(x.device)
    build = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return {"result": first, "first_s": build, "ms": 1000 * sorted(times)[len(times) // 2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, metavar="MODEL:BATCH")
    parser.add_argument(
        "--ways", nargs="+", default=["eager", "default", "inductor"], help="eager, default, or a backend"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for case in args.cases:
        name, n = case.rsplit(":", 1)
        model = models.load(name, device=args.device)
        x = _batch(model, int(n))
        eager = None
        for way in args.ways:
            row = measure(model, x, way, args.repeats)
            result = row.pop("result")
            eager = eager or result
            row.update(
                model=name,
                batch=int(n),
                way=way,
                device=str(x.device),
                precision=result.precision,
                same_fooled=bool(torch.equal(result.success, eager.success)),
                max_dx=float((result.x_adv - eager.x_adv).abs().max()),
            )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
