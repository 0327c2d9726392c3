"""``tlc-probe reliance``: how much a checkpoint's output depends on each site's statistic."""

from __future__ import annotations

import argparse
import time

from .paths import existing, writable_folder

NAME = "reliance"
HELP = "PSNR and output change when each global site's statistic is frozen to a constant"
DESCRIPTION = (
    "Reliance of checkpoints on their global sites: every site's aggregated statistic (SE "
    "pool mean; instance-norm mean and std) is replaced by its per-channel mean over the "
    "test photos, one site at a time and all at once; reports the PSNR (dB) on the test "
    "photos, its change, and the mean absolute change of the output. Writes reliance.csv."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``reliance``."""
    p.add_argument(
        "checkpoints",
        nargs="+",
        help="tlc-probe checkpoints, or ones spandrel recognises (with --task, --train-size)",
    )
    p.add_argument("--task", help="deblur | derain | dehaze, for a foreign checkpoint")
    p.add_argument(
        "--train-size", type=int, help="training patch size (px), for a foreign checkpoint"
    )
    p.add_argument("--out", required=True, help="output folder (reliance.csv)")
    p.add_argument(
        "--photos",
        type=int,
        help="score the first N test photos (default: all; the constants always come from all)",
    )
    p.add_argument("--seed", type=int, default=0, help="degradation seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    """Compute, write and print the reliance tables; returns 0."""
    import pandas as pd

    from ..jobs.reliance import reliance_checkpoint
    from ..jobs.render import markdown
    from ..store.atomic import atomic_write

    existing(args.checkpoints, "checkpoint", kind="file")
    if args.photos is not None and args.photos < 1:
        raise ValueError(f"--photos must be >= 1, got {args.photos}")
    writable_folder(args.out)
    t0 = time.perf_counter()
    table = pd.concat(
        [
            reliance_checkpoint(
                c, args.photos, args.seed, task=args.task, train_size=args.train_size
            )
            for c in args.checkpoints
        ],
        ignore_index=True,
    )
    path = atomic_write(f"{args.out}/reliance.csv", lambda p: table.to_csv(p, index=False))
    print(markdown(table.round(4)))
    print(f"wrote {path} ({len(table)} rows) in {time.perf_counter() - t0:.1f} s")
    return 0
