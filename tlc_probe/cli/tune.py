"""``tlc-probe tune``: each site's TLC window chosen from the measured shift, checked by PSNR."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .options import FLAGS as MODEL_FLAGS
from .options import add_data_options, add_model_options, identity, image_source
from .paths import existing, writable_folder

NAME = "tune"
HELP = "choose each site's TLC window from the shift of its statistics; write plan.json"
DESCRIPTION = (
    "Per-site TLC windows: for each candidate (1, 1.25, 1.5, 2, 3, 4 x the training extent, "
    "and global) the checkpoint converted uniformly runs on tuning images (training "
    "images, never the test images: the bundled training photos, --train-data, or a GoPro "
    "folder's train split) under the probe; each site takes the candidate whose statistic "
    "is closest to the training crops' (W1 / std(train), mean over channels). The plan is "
    "kept only when its PSNR on the tuning images beats the uniform 1.5, else the uniform "
    "1.5 is written. Writes plan.json (bench --plan runs it as tlc-tuned), chosen.json (the "
    "plan before validation), scores.csv, validation.csv and tune.png/pdf (chosen window "
    "per site against depth, W1 before and after)."
)
FLAGS = MODEL_FLAGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``tune``."""
    add_model_options(p)
    add_data_options(p)
    p.add_argument("--out", required=True, help="output folder (plan.json, scores.csv, ...)")
    p.add_argument(
        "--images", type=int, default=4, help="tuning images (training images; default 4)"
    )


def run(args: argparse.Namespace) -> int:
    """Tune, write the plan and the tables, print the choice; returns 0."""
    from ..jobs.tune import tune_outputs

    existing([args.checkpoint], "--checkpoint", kind="file")
    images = image_source(args)
    if args.images < 1:
        raise ValueError(f"--images must be >= 1, got {args.images}")
    writable_folder(args.out)
    t0 = time.perf_counter()
    out = Path(args.out)
    res = tune_outputs(
        args.checkpoint, out, images=images, n_images=args.images, progress=True, **identity(args)
    )
    v, chosen = res["plan"].validation, res["chosen"].windows
    n_global = sum(w is None for w in chosen.values())
    print(
        f"{len(chosen)} sites, {n_global} global; validation PSNR uniform 1.5 "
        f"{v['uniform_psnr']:.2f} dB, tuned {v['tuned_psnr']:.2f} dB "
        f"(paired {v['dpsnr']:+.3f} dB [{v['dpsnr_lo']:+.3f}, {v['dpsnr_hi']:+.3f}] on "
        f"{len(v['images'])} images): kept {v['kept']}"
    )
    print(f"wrote {out / 'plan.json'} in {time.perf_counter() - t0:.1f} s")
    return 0
