"""`python -m engine`: the engine's operations from a shell, with JSON output.

Every user error (unknown model, unreadable image, parameter out of range) ends with one line on stderr and exit
code 2, never a traceback. One flag means one thing in every subcommand (engine/cli/options.py): --model the
white-box model, --models several, --black the black-box models, --target a target class, --n a number of
images, --images image names or files, --copies noisy copies. Defaults come from the chosen model's domain.
"""

from __future__ import annotations

import sys

from engine import domains
from engine.models import ModelUnavailable

from . import attack, averaging, features, jsma, listing, quiz, recognisable, seed_report, sweep, transfer, universal
from .options import EXIT_USAGE, Parser, fail

# Commands that only read the catalogue or write a file: they never wait behind a running job.
LIGHT_COMMANDS = {"models", "attacks", "export-fmnist", "download", "classroom"}

# In the order `python -m engine --help` lists them.
_GROUPS = (
    listing.register_lists,
    attack.register,
    transfer.register,
    jsma.register_compare,
    features.register_separability,
    jsma.register,
    features.register_gradcam,
    recognisable.register,
    averaging.register,
    quiz.register,
    quiz.register_classroom,
    features.register_patch,
    sweep.register,
    universal.register,
    seed_report.register,
    listing.register_files,
)


def build_parser() -> Parser:
    parser = Parser(prog="python -m engine", description="Perturbation Explorer engine")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for register in _GROUPS:
        register(sub)
    return parser


def _waiting(ahead: int | None) -> None:
    """Say once, on stderr, that this command waits for the machine's running job (engine.compute)."""
    if not getattr(_waiting, "said", False):
        _waiting.said = True
        print(
            "waiting for a compute slot: another Perturbation Explorer job is running on this machine "
            "(PE_COMPUTE_SLOTS sets how many run at once)",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    from engine import compute

    try:
        args = build_parser().parse_args(argv)
        if args.command in LIGHT_COMMANDS or getattr(args, "estimate", False):
            return args.func(args)
        with compute.slot(_waiting):
            return args.func(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except domains.NeedsImages as err:
        return fail(f"{err}: give them with --data DIR (class sub-folders, or a file,label CSV)")
    except (ValueError, ModelUnavailable, OSError) as err:
        return fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    except KeyboardInterrupt:
        return fail("interrupted")


__all__ = ["EXIT_USAGE", "LIGHT_COMMANDS", "build_parser", "main"]
