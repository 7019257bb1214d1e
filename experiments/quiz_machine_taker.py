"""The perturbation quiz taken by held-out models: a reference for a class's score (Menn 2023, §4.8.2.2).

One quiz on a domain (its source models, quiz settings and built-in images), taken by each of the
domain's held-out judges from the same 8-bit pictures, restricted to the same choices. Writes
experiments/results/quiz_machine_taker.{json,md}.

    nice -n 10 python experiments/quiz_machine_taker.py --domain fashion-mnist --questions 200 --seed 0
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine import domains, models  # noqa: E402
from engine.analysis import quiz  # noqa: E402

RESULTS = ROOT / "experiments" / "results"


def _percent(v) -> str:
    return "—" if v is None else f"{v:.1%}"


def _cell(s: dict) -> str:
    return f"{_percent(s['accuracy'])} [{s['ci low']:.0%}–{s['ci high']:.0%}] ({s['correct']}/{s['answered']})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="fashion-mnist", choices=domains.names())
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--choices", type=int, default=None, help="default: the domain's quiz default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "quiz_machine_taker"), help="stem of the .json and .md")
    # On cores shared with other jobs, two threads wait on each other far more than they help.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    domain = domains.get(args.domain)
    sources = [models.load(n, device="cpu") for n in domain.sources]
    judges = [models.load(n, device="cpu") for n in domain.judges]
    settings = quiz.Settings.for_domain(domain)
    start = time.perf_counter()
    made = quiz.make(
        sources,
        questions=args.questions,
        choices=args.choices,
        seed=args.seed,
        settings=settings,
        callback=lambda step, total, state: print(f"\r{step / total:.0%}", end="", file=sys.stderr, flush=True),
    )
    print(file=sys.stderr)
    scores = {j.name: quiz.score(made.questions, quiz.machine_answers(made, j)) for j in judges}
    kinds = list(next(iter(scores.values()))["by kind"])
    mean = {k: sum(s["by kind"][k]["accuracy"] for s in scores.values()) / len(scores) for k in kinds}
    command = "nice -n 10 python experiments/quiz_machine_taker.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    out = {
        "command": command.strip(),
        "domain": args.domain,
        "questions": len(made.questions),
        "choices": len(made.questions[0].choices),
        "seed": args.seed,
        "sources": made.sources,
        "single-model source": made.sources[0],
        "judges": [j.name for j in judges],
        "attack": settings.attack,
        "params": settings.params,
        "copies": settings.copies,
        "sigma": settings.sigma,
        "per kind": {k: sum(q.kind == k for q in made.questions) for k in kinds},
        "seconds": round(time.perf_counter() - start, 1),
        "scores": scores,
        "mean accuracy by kind": mean,
        "chance": next(iter(scores.values()))["chance"],
        "thesis": quiz.THESIS,
    }
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# Perturbation quiz taken by held-out models — {domain.title}",
        "",
        f"{out['questions']} questions ({', '.join(f'{n} {k}' for k, n in out['per kind'].items())}), "
        f"{out['choices']} choices each, seed {args.seed}. Single-model perturbations: {out['single-model source']}; "
        f"noisy multi-model: {', '.join(made.sources)}, {settings.copies} copies each at σ {settings.sigma:g}. "
        f"Attack {settings.attack} {json.dumps(settings.params)}. Each judge sees the quiz's 8-bit display-normalised "
        f"pictures and picks the choice with its highest logit. Made in {out['seconds']:.0f} s on shared CPU cores "
        f"({args.threads} thread).",
        "",
        f"Command: `{out['command']}`",
        "",
        "Accuracy among answered questions [95 % Clopper–Pearson interval] (correct/answered):",
        "",
        "| judge | all | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for name, s in scores.items():
        lines.append(f"| {name} | {_cell(s)} | " + " | ".join(_cell(s["by kind"][k]) for k in kinds) + " |")
    lines.append("| mean of the judges | | " + " | ".join(_percent(mean[k]) for k in kinds) + " |")
    t = quiz.THESIS
    lines += [
        "",
        f"Chance: {_percent(out['chance'])} (1 of {out['choices']}).",
        "",
        f"Thesis (Menn 2023, §4.8.2.2): {_percent(t['accuracy'])} for {t['what']} ({t['questions']} perturbations, "
        f"{t['takers']} people; chance {_percent(t['chance'])}). A different taker (people, not models), dataset "
        "and number of choices: the figure sits beside ours, it is not the same measurement.",
        "",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
