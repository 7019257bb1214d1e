"""The same transfer sweep on one process, local worker processes and Ray, side by side.

Grid: fgsm, pgd and aa at ε 0.05 and 0.1 (AA at layer 3) on fmnist-lenet-0, scored on
fmnist-resnet-1 and fmnist-vgg-1, 2,000 test images in shards of 250: 48 jobs. Worker
processes pay a start-up (forked from the fork server, load the models once), so a small grid
runs fastest in one process; this one is big enough for the workers to pay it back. Repetitions
interleave the executors; medians and (min–max) are printed, with the speed-up over the
serial run and whether every metric equals the serial run's. Ray's start-up (ray.init
of a local 2-CPU instance) is timed apart; its workers stay up between repetitions, as
on a cluster.

    python bench/sweep_scaling.py [--repeats 2] [--quick] [--json]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_common import parser as bench_parser  # noqa: E402

from engine import sweep  # noqa: E402

METRIC_COLUMNS = ["job", "black", *sweep.METRICS, "n", "l2", "linf"]


def _rows(path: Path):
    frame = sweep.load_results(path)
    return frame[METRIC_COLUMNS].sort_values(["job", "black"]).reset_index(drop=True)


def main(argv=None) -> int:
    parser = bench_parser(__doc__, repeats=2, quick_help="a 4-job grid, no Ray (CI)", device=False)
    args = parser.parse_args(argv)
    grid = sweep.Grid(
        attacks=["fgsm"] if args.quick else ["fgsm", "pgd", "aa"],
        whites=["fmnist-lenet-0"],
        blacks=["fmnist-resnet-1", "fmnist-vgg-1"],
        eps=[0.05, 0.1],
        layers=[3],
        images=40 if args.quick else 2000,
        shard_size=20 if args.quick else 250,
    )
    executors = {
        "serial": lambda: sweep.SerialExecutor(),
        "local, 1 worker": lambda: sweep.LocalExecutor(workers=1),
        "local, 2 workers": lambda: sweep.LocalExecutor(workers=2),
    }
    ray_start = None
    if not args.quick:
        import ray

        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
        ray_start = time.perf_counter() - start
        executors["ray, 2 workers"] = lambda: sweep.RayExecutor(workers=2)
    times = {name: [] for name in executors}
    same = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(1 if args.quick else args.repeats):
            for name, make in executors.items():
                out = Path(tmp) / f"{len(times[name])}-{name.replace(' ', '_').replace(',', '')}.parquet"
                summary = sweep.run_sweep(grid, out, executor=make(), overwrite=True)
                if summary["failed"]:
                    raise SystemExit(f"{name}: {summary['failed']} jobs failed")
                times[name].append(summary["seconds"])
                rows = _rows(out)
                if name == "serial":
                    reference = rows
                same[name] = bool(rows.equals(reference))
    if ray_start is not None:
        import ray

        ray.shutdown()
    serial = statistics.median(times["serial"])
    report = {
        "jobs": len(grid.jobs()),
        "ray_start_s": ray_start,
        "rows": [
            {
                "executor": name,
                "median_s": statistics.median(t),
                "min_s": min(t),
                "max_s": max(t),
                "speed_up": serial / statistics.median(t),
                "same_metrics_as_serial": same[name],
            }
            for name, t in times.items()
        ],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['jobs']} jobs; Ray start-up (local instance, 2 CPUs): "
        f"{'—' if ray_start is None else f'{ray_start:.1f} s'}"
    )
    print("| executor | sweep (s) | speed-up vs serial | metrics equal to serial |")
    print("|---|---|---|---|")
    for r in report["rows"]:
        print(
            f"| {r['executor']} | {r['median_s']:.1f} ({r['min_s']:.1f}–{r['max_s']:.1f}) | {r['speed_up']:.2f}× | "
            f"{'yes' if r['same_metrics_as_serial'] else 'NO'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
