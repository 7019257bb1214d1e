"""A grid of transfer jobs on local cores or a Ray cluster, written to a tidy results file (sweep)."""

from __future__ import annotations

import json

from engine import attacks

from . import options
from .inputs import registered_domain


def _key_values(pairs: list[str]) -> dict:
    """--param NAME=VALUE flags as a dict (values range-checked later by each attack's spec)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {pair!r}: write NAME=VALUE, e.g. --param alpha=0.01")
        out[name.strip().replace("-", "_")] = value.strip()
    return out


def _sweep_attacks() -> list[str]:
    from engine.analysis.transfer import METHODS

    return list(dict.fromkeys([*METHODS, *attacks.ATTACKS]))


def _images(args) -> int:
    if args.n is not None:
        return options.count(args.n)
    own = registered_domain(args, args.models[0]).defaults
    return own.get("sweep", {}).get("images", own["images"])


def cmd_sweep(args) -> int:
    from engine import sweep

    options.require(args, "models", "--models")
    grid = sweep.Grid(
        attacks=args.attack,
        whites=args.models,
        blacks=args.black,
        eps=args.eps_values or (),
        layers=args.layer or (None,),
        images=_images(args),
        shard_size=args.shard_size,
        steps=args.steps,
        seed=args.seed,
        params=_key_values(args.param),
        device=args.device,
        data=args.data,
    )
    executor = sweep.make_executor(workers=args.workers, retries=args.retries, ray=args.ray)
    if not isinstance(executor, sweep.RayExecutor):  # Ray's GPUs are the cluster's, not this machine's
        sweep.devices.devices(args.device)  # a GPU this machine lacks: refused before the results file is made
    report = sweep.run_sweep(
        grid, args.out, executor=executor, resume=args.resume, overwrite=args.overwrite, progress=not args.json
    )
    summary = json.loads(sweep.summarise(sweep.load_results(args.out)).to_json(orient="records"))  # NA → null
    if args.json:
        print(json.dumps({**report, "summary": summary}, indent=2))
        return 0 if report["failed"] == 0 else 1
    print(
        f"{report['out']}: {report['run']} jobs run, {report['skipped']} skipped, {report['failed']} failed, "
        f"{report['seconds']} s ({report['executor']})"
    )
    fmt = lambda v: "   —" if v is None else f"{v:.3f}"  # noqa: E731
    for r in summary:
        setting = "  ".join(f"{k}={r[k]}" for k in ("eps", "layer", "steps") if r[k] is not None)
        print(
            f"{r['attack']:<9}{r['white']} → {r['black']:<20}{setting:<28} n={r['n']:<5}"
            + "".join(f"{m}={fmt(r[m])}  " for m in ("error", "uTR", "tSuc", "tTR"))
        )
    return 0 if report["failed"] == 0 else 1


def _add_grid(p) -> None:
    options.add_models(p, "white-box model(s) (required)")
    options.renamed(p, "--white", "--models", nargs="+")
    options.add_data(p)
    options.add_black(p, "black-box model(s); a model is never its own black box", required=True)
    p.add_argument(
        "--attack",
        required=True,
        nargs="+",
        choices=_sweep_attacks(),
        help="targeted methods (aa tmifgsm tpgd itcm) or catalogue attacks (untargeted)",
    )
    options.add_eps_values(p, "ε values (default: each attack's default for the domain)")
    p.add_argument("--layer", type=int, nargs="+", help="AA layer indices (default: the middle layer)")
    p.add_argument("--steps", type=int, default=None, help="iterations, for attacks that have them (default: theirs)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another attack parameter, given to the attacks that declare it (repeatable)",
    )
    options.add_n(p, "test images (or gallery photos) to attack (default: the domain's)")
    p.add_argument("--shard-size", type=int, default=50, help="images per job")


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="a grid of transfer jobs (attack × white × black × ε × layer × shard) on local "
        "cores or a Ray cluster, written to a tidy .csv/.parquet file",
    )
    _add_grid(p)
    p.add_argument("--out", required=True, help="results file, .csv or .parquet (rows are written as jobs finish)")
    p.add_argument("--resume", action="store_true", help="skip the jobs --out already holds; rerun its failed ones")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: all cores); "
        "with --ray and no cluster, the CPUs of the local Ray instance",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: ADDRESS (HEAD:6379), else $RAY_ADDRESS, else a local instance; "
        "RAY_ADDRESS set in the environment also selects Ray",
    )
    p.add_argument("--retries", type=int, default=2, help="times a failed or killed job is run again")
    p.add_argument("--seed", type=int, default=0, help="random target classes and random starts")
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default: one job per core); cuda: every GPU, shards dealt round-robin, one worker per GPU "
        "(on Ray: half a GPU per task); or a list of GPUs, cuda:0,cuda:1",
    )
    options.add_json(p)
    p.set_defaults(func=cmd_sweep)
