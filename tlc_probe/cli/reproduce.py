"""``tlc-probe reproduce``: the main job, on the embedded default or on your model and data."""

from __future__ import annotations

import argparse

from .options import FLAGS as MODEL_FLAGS
from .options import add_data_options, add_model_options, identity, image_source
from .paths import existing, writable_folder

NAME = "reproduce"
FLAGS = {
    **MODEL_FLAGS,
    "overwrite=True": "--overwrite",
    "arch=": "--model",
    "n_images must": "--images must",
}
HELP = "run the main job: the embedded default, or --checkpoint CK [--data DIR] (your model)"
DESCRIPTION = (
    "The main job. Without --checkpoint, on the embedded default: every checkpoint "
    "shipped with the package (or in $TLC_PROBE_CHECKPOINTS, or --checkpoints) on the "
    "bundled photos. With --checkpoint CK (and --model/--preset, --task, --train-size, "
    "--name as collect takes them; --data DIR --layout gopro|sots|pairs for your test "
    "images): the same job on your model. Collects the five regimes' statistics, "
    "measures the output's reliance on each site, computes the shift tables and their "
    "decomposition (content / context / aggregation), draws the Fig. A3 / depth / heatmap "
    "/ decomposition figures and the qualitative panels, runs Table A1 (whole / TLC / "
    "tiles) and the window sweep, and writes OUT/REPORT.md. Prints a time estimate first."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``reproduce``."""
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--quick", action="store_true", help="one image, reduced settings (~5-9 min)")
    p.add_argument(
        "--checkpoints",
        nargs="+",
        metavar="CKPT",
        help="tlc-probe checkpoints of the embedded default (default: the shipped ones)",
    )
    p.add_argument("--checkpoint", help="your checkpoint: run the main job on it")
    add_model_options(p, checkpoint=False)
    add_data_options(p, train=True)
    p.add_argument("--images", type=int, help="use the first N test images (default: all)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier main job in OUT (refused without it)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the main job and print the per-model summary; returns 0."""
    from ..jobs.reproduce import reproduce

    if args.checkpoints and args.checkpoint:
        raise ValueError("--checkpoint (your model) and --checkpoints exclude each other")
    for flag, paths in (("--checkpoints", args.checkpoints), ("--checkpoint", [args.checkpoint])):
        if paths and paths[0]:
            existing(paths, flag, kind="file")
    images = image_source(args)
    mine = identity(args)
    if not args.checkpoint:
        if given := [f"--{k.replace('_', '-')}" for k, v in mine.items() if v is not None]:
            raise ValueError(f"{', '.join(given)} describe(s) --checkpoint, which was not given")
        mine = {}
    else:
        mine["arch"] = mine.pop("model")
    writable_folder(args.out)
    r = reproduce(
        args.checkpoint,
        out=args.out,
        quick=args.quick,
        checkpoints=args.checkpoints,
        images=images,
        n_images=args.images,
        overwrite=args.overwrite,
        **mine,
    )
    for row in r["summary"]:
        noop = " (TLC changed nothing: windows cover the maps)" if row.get("tlc_noop") else ""
        print(
            f"  {row['model']} {row['task']} {row['stat']}: TLC reduces W1 at "
            f"{row['frac_w1_improved']:.0%} of {row['n_sites']} sites, median W1 ratio "
            f"tlc/whole {row['median_w1_ratio']:.2f}{noop}"
        )
    print(f"wrote {args.out}/REPORT.md in {r['seconds']['total']:.0f} s")
    return 0
