"""``tomolearn train``: train a learned reconstructor from a YAML configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..train import distributed_teardown, trainer_from_config
from .options import HelpFormatter, EXAMPLES, add_output_flags, check_parent


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``train`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser("train", help="train a learned reconstructor from a YAML configuration",
                              epilog="examples:\n  " + EXAMPLES["train"],
                              formatter_class=HelpFormatter)
    p.add_argument("config", metavar="CONFIG.yaml",
                   help="training configuration (keys: out_dir, model, data, train; see docs/training.md)")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default: the config's out_dir)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one configuration value (YAML), e.g. --set train.seed=1; repeatable")
    p.add_argument("--resume", action="store_true", help="continue the run in the run directory")
    add_output_flags(p)
    p.add_argument("--max-steps", type=_at_least_one, default=None, metavar="N",
                   help="stop after this many steps (the schedule keeps its length; resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _at_least_one(text: str) -> int:
    """``--max-steps``: an integer >= 1, refused by argparse before anything is read or made."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {n}")
    return n


def run(args) -> int:
    """Train (or resume) the run of ``args.config``; rank 0 prints the summary."""
    if args.out is not None:  # a run directory named in the configuration is created as named
        check_parent(Path(args.out), "--out", args.parents)
    try:
        trainer = trainer_from_config(args.config, out_dir=args.out, progress=not args.quiet,
                                      overrides=args.set)
        summary = trainer.fit(resume=args.resume, max_steps=args.max_steps)
    except BaseException:
        distributed_teardown(wait=False)
        raise
    distributed_teardown()
    if trainer.rank == 0:
        best = summary["best"]
        best_text = (f"best validation PSNR {best['psnr']:.2f} dB / SSIM {best['ssim']:.3f} at step "
                     f"{best['step']}" if best["step"] else "no validation yet")
        print(f"{summary['stopped']}: {summary['steps']} steps, {summary['samples_seen']} samples "
              f"in {summary['seconds']:.0f} s; {best_text}; run directory {trainer.out_dir}")
    return 0
