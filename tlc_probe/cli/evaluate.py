"""``tlc-probe evaluate``: PSNR of checkpoints on the test photos per scheme."""

from __future__ import annotations

import argparse

from .options import FLAGS as MODEL_FLAGS
from .options import add_data_options, add_model_options, identity, image_source
from .paths import existing

FLAGS = MODEL_FLAGS

NAME = "evaluate"
HELP = "PSNR of checkpoints on the test photos: input, whole, TLC, tiles"
DESCRIPTION = (
    "Mean PSNR (dB) on the test images (the held-out bundled photos degraded for each "
    "checkpoint's task, or --data): the "
    "input, whole-image inference, TLC (the checkpoint's train_size) and tiles of "
    "train_size with overlap 16; site_maps: the smallest and largest feature map a global "
    "site sees at train_size. --reliance adds the PSNR change with every site's statistic "
    "frozen (frozen_all) and how many sites the output relies on (>= 0.01 dB alone)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``evaluate``."""
    p.add_argument("checkpoints", nargs="+", help="checkpoints (tlc-probe, published, spandrel)")
    add_model_options(p, checkpoint=False)
    add_data_options(p)
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
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
    if args.name and len(args.checkpoints) > 1:
        raise ValueError("--name names one checkpoint; evaluate the checkpoints one at a time")
    images = image_source(args)
    table = psnr_table(
        args.checkpoints, reliance=args.reliance, images=images, **identity(args)
    ).round(2)
    print(markdown(table) if args.markdown else table.to_string(index=False))
    return 0
