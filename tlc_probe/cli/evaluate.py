"""``tlc-probe evaluate``: PSNR of checkpoints on the test photos per scheme."""

from __future__ import annotations

import argparse

from .paths import existing

NAME = "evaluate"
HELP = "PSNR of checkpoints on the test photos: input, whole, TLC, tiles"
DESCRIPTION = (
    "Mean PSNR (dB) on the held-out test photos degraded for each checkpoint's task: the "
    "input, whole-image inference, TLC (the checkpoint's train_size) and tiles of "
    "train_size with overlap 16; site_maps: the smallest and largest feature map a global "
    "site sees at train_size. --reliance adds the PSNR change with every site's statistic "
    "frozen (frozen_all) and how many sites the output relies on (>= 0.01 dB alone)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``evaluate``."""
    p.add_argument("checkpoints", nargs="+", help="tlc-probe checkpoints")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--seed", type=int, default=0, help="degradation seed (default: 0)")
    p.add_argument(
        "--reliance",
        action="store_true",
        help="add the PSNR change with every site frozen and the count of relied-on sites",
    )


def run(args: argparse.Namespace) -> int:
    """Print the PSNR table; returns 0."""
    from ..jobs.evaluate import psnr_table
    from ..jobs.render import markdown

    existing(args.checkpoints, "checkpoint", kind="file")
    table = psnr_table(args.checkpoints, seed=args.seed, reliance=args.reliance).round(2)
    print(markdown(table) if args.markdown else table.to_string(index=False))
    return 0
