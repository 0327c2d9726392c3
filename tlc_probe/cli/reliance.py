"""``tlc-probe reliance``: how much a checkpoint's output depends on each site's statistic."""

from __future__ import annotations

import argparse
import time

from .options import FLAGS as MODEL_FLAGS
from .options import add_data_options, add_model_options, identity, image_source
from .paths import existing, writable_folder

NAME = "reliance"
HELP = "PSNR and output change when each global site's statistic is frozen to a constant"
DESCRIPTION = (
    "Reliance of checkpoints on their global sites: every site's aggregated statistic (SE "
    "pool mean; instance-norm mean and std; channel attention matrix) is replaced by its "
    "per-channel mean over the test images (the bundled photos, or --data), one site at a "
    "time and all at once; reports the PSNR (dB) on the test images, its change, and the "
    "mean absolute change of the output. Writes reliance.csv, whose model column is the "
    "run name (--name), so that shift --reliance joins it to the statistics of collect."
)
FLAGS = MODEL_FLAGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``reliance``."""
    p.add_argument(
        "checkpoints",
        nargs="*",
        help="checkpoints (tlc-probe, published or spandrel-recognised); or --checkpoint",
    )
    p.add_argument("--checkpoint", help="one checkpoint (as the other commands take it)")
    add_model_options(p, checkpoint=False)
    add_data_options(p)
    p.add_argument("--out", required=True, help="output folder (reliance.csv)")
    p.add_argument(
        "--photos",
        "--images",
        type=int,
        dest="photos",
        help="score the first N test images (default: all)",
    )
    p.add_argument(
        "--reference-images",
        type=int,
        help="the constants are the means over the first N test images (default: all)",
    )


def run(args: argparse.Namespace) -> int:
    """Compute, write and print the reliance tables; returns 0."""
    import pandas as pd

    from ..jobs.reliance import reliance_checkpoint
    from ..jobs.render import markdown
    from ..store.atomic import atomic_write

    checkpoints = list(args.checkpoints) + ([args.checkpoint] if args.checkpoint else [])
    if not checkpoints:
        raise ValueError("no checkpoint: give --checkpoint CK (or checkpoints as arguments)")
    if args.name and len(checkpoints) > 1:
        raise ValueError("--name names one checkpoint; run reliance once per checkpoint")
    existing(checkpoints, "checkpoint", kind="file")
    images = image_source(args)
    for flag, n in (("--photos", args.photos), ("--reference-images", args.reference_images)):
        if n is not None and n < 1:
            raise ValueError(f"{flag} must be >= 1, got {n}")
    writable_folder(args.out)
    t0 = time.perf_counter()
    table = pd.concat(
        [
            reliance_checkpoint(
                c,
                args.photos,
                images=images,
                n_reference=args.reference_images,
                progress=True,
                **identity(args),
            )
            for c in checkpoints
        ],
        ignore_index=True,
    )
    path = atomic_write(f"{args.out}/reliance.csv", lambda p: table.to_csv(p, index=False))
    print(markdown(table.round(4)))
    print(f"wrote {path} ({len(table)} rows) in {time.perf_counter() - t0:.1f} s")
    return 0
