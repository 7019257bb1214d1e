"""The flags the subcommands share, so that one name means one thing in every subcommand.

--model is the one white-box (source) model, --models several of them, --black the black-box (held-out) models,
--target a target class, --n a number of images, --images image names or files, --copies noisy copies and --eps
the ε value(s). Defaults that depend on the images (model lists, counts, copies) are None here and come from the
domain record once the models are known (`inputs.domain_for`).
"""

from __future__ import annotations

import argparse
import sys

from engine import attacks, domains
from engine.models.classifier import PRECISIONS

EXIT_USAGE = 2


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise SystemExit(fail(f"{self.prog}: {message}"))


class _Renamed(argparse.Action):
    """An old flag kept for one release: stores into the new flag's place and says so on stderr, so that
    --json output on stdout stays clean."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def renamed(p: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    """A hidden alias `old` of the flag `new` (same dest, same type and nargs as given)."""
    dest = kwargs.pop("dest", new.lstrip("-").replace("-", "_"))
    p.add_argument(
        old, dest=dest, action=_Renamed, new=new, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs
    )


def require(args, dest: str, flag: str) -> None:
    """A flag that is required but has a deprecated alias (argparse's required= would reject the alias)."""
    if not getattr(args, dest, None):
        raise ValueError(f"python -m engine {args.command}: the following arguments are required: {flag}")


def add_model(p: argparse.ArgumentParser, required: bool = False, text: str = "the white-box (source) model") -> None:
    p.add_argument("--model", required=required, help=text)


def add_models(p: argparse.ArgumentParser, text: str, required: bool = False) -> None:
    p.add_argument("--models", nargs="+", required=required, metavar="MODEL", help=text)


def add_black(
    p: argparse.ArgumentParser,
    text: str = "black-box (held-out) model(s) (default: the domain's judges)",
    required: bool = False,
) -> None:
    p.add_argument("--black", nargs="+", required=required, metavar="MODEL", help=text)


def add_domain(p: argparse.ArgumentParser, text: str = "") -> None:
    p.add_argument(
        "--domain",
        choices=domains.names(),
        help=text
        or f"the built-in domain whose models are the defaults (default: the first model's "
        f"domain, else {domains.names()[0]})",
    )


def add_n(p: argparse.ArgumentParser, text: str = "the first N evaluation images (default: the domain's)") -> None:
    p.add_argument("--n", type=int, default=None, help=text)


def add_images(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--images",
        nargs="+",
        metavar="IMAGE",
        help="gallery names, image files or test-split keys such as fmnist:17 (instead of --n)",
    )


def add_copies(p: argparse.ArgumentParser, text: str = "noisy copies per model (default: the domain's)") -> None:
    p.add_argument("--copies", type=int, default=None, help=text)


def add_eps_values(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--eps", dest="eps_values", type=float, nargs="+", metavar="EPS", help=text)


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="labelled images of your own: class sub-folders, a flat folder with "
        "a file,label CSV, or an ImageNet validation layout (labels: class names, indices or wnids)",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_common(p: argparse.ArgumentParser, seed: bool = False) -> None:
    """The flags every computing subcommand shares."""
    if seed:
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best present)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=list(PRECISIONS),
        help="auto (default: TF32 or bf16 where the batch is large enough on a GPU, fp32 on the CPU; scores stay "
        "fp32), or fp32, tf32, bf16/fp16 autocast of the networks (logits stay float32)",
    )
    p.add_argument(
        "--model-meta",
        metavar="JSON",
        help="preprocessing of your own models (input_size, mean, std, "
        "class_names, domain, ...) where no sidecar sits beside the file, or for an entry point",
    )
    add_json(p)


def averageable() -> list[str]:
    return [n for n, s in attacks.ATTACKS.items() if s.averageable]


def param_names() -> list[str]:
    return sorted({p["name"] for spec in attacks.available() for p in spec["params"]})


def add_attack_params(parser: argparse.ArgumentParser) -> None:
    """One flag per parameter name used by any attack; `run` rejects those the attack lacks."""
    seen: dict[str, dict] = {}
    for spec in attacks.available():
        for p in spec["params"]:
            seen.setdefault(p["name"], p)
    for name, p in seen.items():
        flag = "--" + name.replace("_", "-")
        text = p["help"].replace("%", "%%")  # argparse formats help with %
        if p["type"] == "bool":
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif p["type"] == "str":
            parser.add_argument(flag, dest=name, choices=p["choices"], default=None, help=text)
        else:
            kind = int if p["type"] == "int" else float
            parser.add_argument(flag, dest=name, type=kind, default=None, help=text)


def given_params(args) -> dict:
    return {name: getattr(args, name) for name in param_names() if getattr(args, name, None) is not None}


def own_params(chosen: list[str], given: dict) -> dict[str, dict]:
    """Per chosen attack, the flags given that it declares (one flag set serves several attacks);
    a flag none of them declares is an error, not silently dropped."""
    declared = {a: {p.name for p in attacks.get(a).params} for a in chosen}
    unused = sorted(set(given) - set().union(*declared.values()))
    if unused:
        raise ValueError(f"--{unused[0].replace('_', '-')} is not a parameter of {', '.join(chosen)}")
    return {a: {k: v for k, v in given.items() if k in names} for a, names in declared.items()}


def parse_target(value: str | None, model) -> int | None:
    """A class index or a class name of `model` (case-insensitive); None stays None."""
    if value is None:
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    lowered = value.strip().lower()
    for i, name in enumerate(model.class_names):
        if name.lower() == lowered:
            return i
    raise ValueError(f"target {value!r} is neither a class index nor a class name of {model.name}")


def choices(text: str) -> int | str:
    """--choices K: a whole number of classes, at least 2, or 'all'."""
    if text == "all":
        return text
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 2, or all; got {text!r}")
    return int(text)


def count(value: int | None, flag: str = "--n") -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"{flag} must be at least 1 (got {value})")
    return value
