"""``tlc-probe evaluate``: PSNR of checkpoints on the test photos per scheme."""

from __future__ import annotations

import argparse

from .paths import existing

NAME = "evaluate"
HELP = "PSNR of checkpoints on the test photos: input, whole, TLC, tiles"
DESCRIPTION = (
    "Mean PSNR (dB) on the held-out test photos degraded for each checkpoint's task: the "
    "input, whole-image inference, TLC (the checkpoint's train_size) and tiles of "
    "train_size with overlap 16."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``evaluate``."""
    p.add_argument("checkpoints", nargs="+", help="tlc-probe checkpoints")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--seed", type=int, default=0, help="degradation seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    """Print the PSNR table; returns 0."""
    from ..jobs.evaluate import psnr_table
    from ..jobs.render import markdown

    existing(args.checkpoints, "checkpoint", kind="file")
    table = psnr_table(args.checkpoints, seed=args.seed).round(2)
    print(markdown(table) if args.markdown else table.to_string(index=False))
    return 0
