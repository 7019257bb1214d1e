"""`python -m engine report`: every seed check that applies to one model, as one self-contained HTML file."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from engine import datasets, domains

from . import options
from .inputs import dataset
from .inputs import model as open_model


class _Bar:
    """A one-line progress bar on stderr; the first Ctrl-C cancels (the report is then written as PARTIAL),
    a second one stops at once."""

    def __init__(self, quiet: bool):
        self.quiet, self.cancelled, self.drawn, self.started = quiet, False, 0.0, time.perf_counter()

    def interrupt(self, signum, frame) -> None:
        if self.cancelled:
            raise KeyboardInterrupt
        self.cancelled = True
        print("\ncancelling: the checks finished so far go into a PARTIAL report", file=sys.stderr, flush=True)

    def __call__(self, step: float, total: int, state: dict) -> bool:
        now = time.perf_counter()
        if not self.quiet and now - self.drawn > 0.5:
            self.drawn = now
            share = min(step / max(total, 1), 1.0)
            bar = "#" * int(30 * share)
            check = state.get("check", "")
            print(f"\r[{bar:<30}] {share:4.0%} {check:<16} {now - self.started:5.0f} s", end="", file=sys.stderr)
        return not self.cancelled


def cmd_report(args) -> int:
    from engine import seed_report

    model = open_model(args, args.model)
    blacks = [open_model(args, name) for name in args.black or []]
    odd = [b.name for b in blacks if list(b.class_names) != list(model.class_names)]
    if odd:
        raise ValueError(f"{odd[0]} does not have {model.name}'s classes: a black box must judge the same classes")
    if args.data and not domains.of(model).custom:  # a built-in model on the user's images: its judges stay
        model.domain_record = datasets.as_domain(domains.of(model), dataset(args), f"data:{args.data}", model)
    todo, skipped = seed_report.plan(model, args.checks, blacks)
    if not todo:
        reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped)
        raise ValueError(f"no seed check applies to {model.name}: {reasons}")
    bar = _Bar(quiet=args.json)
    main = threading.current_thread() is threading.main_thread()  # only the main thread may take SIGINT
    previous = signal.signal(signal.SIGINT, bar.interrupt) if main else None
    try:
        report = seed_report.run(model, names=args.checks, blacks=blacks, tiny=args.quick, seed=args.seed, callback=bar)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        if not args.json:
            print(file=sys.stderr)
    out = Path(args.out or seed_report.file_name(model.name))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(seed_report.render(report), encoding="utf-8")
    summary = {"out": str(out), **seed_report.as_json(report)}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    else:
        for c in summary["checks"]:
            print(f"{c['name']:<16} {c.get('headline') or c.get('error', '')}")
        for s in summary["skipped"]:
            print(f"{s['name']:<16} not applicable: {s['reason']}")
        print(f"{'PARTIAL report' if report['partial'] else 'report'} written to {out} ({report['seconds']:.0f} s)")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="every seed paper's check that applies to a model, with the paper's numbers beside ours, "
        "as one self-contained HTML file",
    )
    options.add_model(p, required=True, text="the model to report on (registered, or your own model file)")
    options.add_data(p)
    options.add_black(p, "held-out models of the same classes that judge the attacks (default: the domain's judges)")
    p.add_argument("--out", metavar="FILE.html", help="where to write the report (default: seed_report_<model>.html)")
    p.add_argument("--checks", nargs="+", metavar="CHECK", help="only these checks (default: every one that applies)")
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes: seconds, to try the command (numbers mean nothing)"
    )
    options.add_common(p, seed=True)
    p.set_defaults(func=cmd_report)
