"""Where C&W's time goes: cProfile of one run of ours and of torchattacks' on the same model and batch.

python bench/profile_cw.py                          # efficientnet-lite0, batch 8, 10 steps
python bench/profile_cw.py --model fmnist-lenet-0   # Fashion-MNIST, the committed test split
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_common import two_cores  # noqa: E402

from engine import attacks, images, models  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lines", type=int, default=12)
    args = parser.parse_args(argv)
    import torchattacks

    two_cores()
    model = models.load(args.model, device="cpu")
    if model.domain == "fashion-mnist":
        x = fashion_mnist.test_split()[0][:256]
    else:
        x = torch.cat([images.load(p, model) for p in images.gallery().values()] * 2)[:8]
    with torch.no_grad():
        y = model(x).argmax(1)
    reference = torchattacks.CW(model, c=1.0, kappa=0.0, steps=args.steps, lr=0.01)
    runs = {
        "ours": lambda: attacks.run("cw", model, x, y=y, steps=args.steps, binary_search_steps=1, score=False),
        "torchattacks": lambda: reference(x, y),
    }
    for run in runs.values():
        run()  # warm-up: first-call allocations are not what we profile
    for name, run in runs.items():
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        run()
        profile.disable()
        print(f"== {name}: {time.perf_counter() - start:.3f} s, {args.model}, batch {x.shape[0]}, {args.steps} steps")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(args.lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
