"""The thesis' human evaluation as a quiz: name the class from the perturbation (quiz)."""

from __future__ import annotations

import json
from pathlib import Path

from engine import domains, images

from . import options
from .inputs import model as open_model


def _sources(args) -> list:
    """--models, else the domain's sources (--domain, or --model's); --model first: it alone makes the
    single-model perturbations."""
    from engine.analysis.quiz import source_names

    if args.models:
        names = source_names(args.model, args.models)
    elif args.domain is None and args.model is None:
        raise ValueError("give --domain, --model or --models")
    else:
        domain = domains.get(args.domain) if args.domain else domains.of(open_model(args, args.model))
        names = source_names(args.model, domain.sources)
    first = open_model(args, names[0])
    if args.domain and first.domain != args.domain:
        raise ValueError(f"{first.name} is a {first.domain} model, not {args.domain}")
    return [first] + [open_model(args, n) for n in names[1:]]


def _made(args, sources, domain, questions: int, out: dict):
    """The quiz's pictures, with its settings added to `out`."""
    from engine.analysis import quiz

    attack = args.attack or domain.defaults["quiz"]["attack"]
    settings = quiz.Settings.for_domain(
        domain,
        attack=attack,
        params=options.own_params([attack], options.given_params(args))[attack],
        copies=args.copies,
        sigma=args.sigma,
    )
    made = quiz.make(sources, questions=questions, choices=args.choices, seed=args.seed, settings=settings)
    out.update(
        attack=settings.attack,
        params=settings.params,
        copies=settings.copies,
        sigma=settings.sigma,
        seconds=round(made.seconds, 2),
    )
    return made


def _write(folder: Path, made, rows: list[dict]) -> str:
    from engine.analysis import quiz

    folder.mkdir(parents=True, exist_ok=True)
    for q, row in zip(made.questions, rows):
        row["picture"] = str(folder / f"q{q.number:03d}.png")
        Path(row["picture"]).write_bytes(images.png_bytes(images.enlarged(q.picture)))
    (folder / "answers.csv").write_text(quiz.blank_sheet(made), encoding="utf-8")
    return str(folder / "answers.csv")


def cmd_quiz(args) -> int:
    from engine.analysis import quiz

    if args.answers and (args.black or args.out):
        raise ValueError("--answers scores a sheet without making the pictures: give --black or --out without it")
    sources = _sources(args)
    first = sources[0]
    domain = domains.of(first)
    quiz.bank(first)  # a domain without labelled images of its own says so before anything else
    questions = args.questions if args.questions is not None else domain.defaults["quiz"]["questions"]
    plan = quiz.plan_for(first, questions=questions, choices=args.choices, seed=args.seed)
    out: dict = {
        "domain": first.domain,
        "seed": args.seed,
        "questions": len(plan),
        "choices": len(plan[0].choices),
        "sources": [m.name for m in sources],
    }
    if args.answers:  # the key depends only on the seed and the labels: no perturbation is computed
        text = Path(args.answers).read_text(encoding="utf-8")
        out["score"] = quiz.score(plan, quiz.read_answers(text, plan, first.class_names))
        return _emit(out, args.json)
    judges = [open_model(args, n) for n in args.black or []]
    for j in judges:  # before the perturbations are made, not after
        quiz.check_judge(j, first.domain, len(first.class_names), out["sources"])
    made = _made(args, sources, domain, questions, out)
    rows = made.sheet(key=args.key)
    if args.out:
        out["answer sheet"] = _write(Path(args.out), made, rows)
    out["sheet"] = rows
    if judges:
        out["judges"] = {j.name: quiz.score(made.questions, quiz.machine_answers(made, j)) for j in judges}
    return _emit(out, args.json)


def _emit(out: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(out, indent=2))
        return 0

    def line(name: str, s: dict) -> str:
        acc = "—" if s["accuracy"] is None else f"{s['accuracy']:.1%} [{s['ci low']:.1%}, {s['ci high']:.1%}]"
        return (
            f"{name:<22} {s['correct']}/{s['answered']} answered = {acc}, {s['unanswered']} unanswered, "
            f"chance {s['chance']:.1%}"
        )

    print(f"{out['domain']} quiz, seed {out['seed']}: {out['questions']} questions, {out['choices']} choices each")
    for row in out.get("sheet", []):
        key = f"  → {row['true class']} ({row['kind']})" if "kind" in row else ""
        print(f"Q{row['question']}: {', '.join(row['choices'])}{key}")
    for who, s in ([("answers", out["score"])] if "score" in out else []) + list(out.get("judges", {}).items()):
        print(line(who, s))
        for kind, part in s["by kind"].items():
            print(line(f"  {kind}", part))
    return 0


def register(sub) -> None:
    p = sub.add_parser("quiz", help="the thesis' human evaluation as a quiz: name the class from the perturbation")
    options.add_data(p)
    options.add_domain(
        p,
        "the built-in domain whose source models and images make the quiz (a model of your own: "
        "give --model and --data)",
    )
    options.add_model(
        p, text="the single-model perturbations' model, first of the sources (default: the domain's first source)"
    )
    options.add_models(p, "models whose perturbations are averaged (default: the domain's sources)")
    options.renamed(p, "--sources", "--models", nargs="+")
    p.add_argument("--questions", type=int, default=None, help="number of questions (default: the domain's)")
    p.add_argument(
        "--choices",
        type=int,
        default=None,
        help="classes offered per question (default: the domain's, at most its classes)",
    )
    p.add_argument(
        "--attack",
        default=None,
        choices=options.averageable(),
        help="the attack whose perturbations are shown (default: the domain's)",
    )
    options.add_copies(p, "noisy copies per source model (default: the domain's)")
    p.add_argument("--sigma", type=float, default=None, help="noise σ of the copies (default: the domain's)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write each question's picture as DIR/q001.png and a blank answer sheet DIR/answers.csv",
    )
    p.add_argument("--key", action="store_true", help="include the answer key (kind, image, true class) in the output")
    p.add_argument(
        "--answers",
        metavar="CSV",
        help="score a filled answer sheet (columns question, answer) against "
        "the quiz these --questions/--choices/--seed make; computes no perturbation",
    )
    options.add_black(p, "held-out black-box model(s) that take the quiz from its pictures")
    options.renamed(p, "--judge", "--black", nargs="+")
    options.add_common(p, seed=True)
    options.add_attack_params(p)
    p.set_defaults(func=cmd_quiz)


def cmd_classroom(args) -> int:
    import time

    from engine import classroom

    store = classroom.Store()
    purged = None if args.expire is None else store.purge(args.expire)
    rows = store.rooms()
    if args.json:
        print(json.dumps({"database": str(store.path), "purged": purged, "rooms": rows}, indent=2))
        return 0
    print(
        f"{store.path}: {len(rows)} room{'s' if len(rows) != 1 else ''}"
        + ("" if purged is None else f", {purged} purged")
    )
    for r in rows:
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["expires"]))
        state = f"open until {until}" if r["open"] else f"expired {until}"
        print(
            f"{r['code']}  {state}  question {r['question']} of {r['questions']} ({r['phase']})  "
            f"{r['students']} students, {r['answers']} answers"
        )
    return 0


def register_classroom(sub) -> None:
    p = sub.add_parser(
        "classroom", help="the classroom quiz's rooms in PE_CLASSROOM_DB: list them, delete the expired ones"
    )
    p.add_argument(
        "--expire",
        type=float,
        default=None,
        metavar="HOURS",
        help="delete the rooms (answers and pictures included) that expired at least HOURS ago (0: every expired one)",
    )
    options.add_json(p)
    p.set_defaults(func=cmd_classroom)
