"""The ``tomolearn`` command line.

Verbs: ``info``, ``demo``, ``data generate``, ``train``, ``reconstruct``,
``evaluate`` and ``benchmark {operators,ellipses}``; ``tomolearn VERB --help``
shows each one's options and examples (docs/cli.md has them all).  Bad input
(a missing file, an unknown method, a shape or geometry that does not fit, an
output that exists) gives a one-line error on stderr and exit status 2; no
traceback unless ``--debug``.

Each verb is a module with ``add_parser(subparsers)`` (its options) and
``run(args)`` (the work); :mod:`.options` holds what they share.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .. import __version__
from ..train import TrainingDivergedError
from . import benchmark, data, demo, evaluate, info, reconstruct, train
from .options import HelpFormatter, Parser, UsageError, one_line

__all__ = ["UsageError", "build_parser", "main"]

#: Verb modules in the order ``tomolearn --help`` lists them.
VERBS = (info, demo, reconstruct, evaluate, data, train, benchmark)


def build_parser() -> argparse.ArgumentParser:
    """The ``tomolearn`` argument parser: global ``--debug`` and one subparser per verb."""
    parser = Parser(
        prog="tomolearn", description="Learned image reconstruction for tomography.",
        epilog=("examples:\n  tomolearn demo\n  tomolearn reconstruct --input sino.npy --method fbp "
                "--out rec.npy\n  tomolearn evaluate --methods fbp,tv --shift all --json eval.json\n"
                "  tomolearn VERB --help"),
        formatter_class=HelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"tomolearn {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = "tomolearn " + " ".join(shlex.quote(a) for a in argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, KeyError, OSError, ImportError,
            TrainingDivergedError) as e:
        if args.debug:
            raise
        print(f"tomolearn {args.verb}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tomolearn {args.verb}: interrupted", file=sys.stderr)
        return 130
