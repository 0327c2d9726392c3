"""``tlc-probe reproduce``: the main job on the embedded default."""

from __future__ import annotations

import argparse

from .paths import existing, writable_folder

NAME = "reproduce"
FLAGS = {"overwrite=True": "--overwrite"}
HELP = "run the main job on the embedded default (bundled photos, shipped checkpoints)"
DESCRIPTION = (
    "The main job on the embedded default: for every checkpoint shipped with the package "
    "(or in $TLC_PROBE_CHECKPOINTS, or --checkpoints), collect the five regimes' statistics "
    "on the bundled photos, measure the output's reliance on each site, compute the shift "
    "tables and their decomposition (content / context / aggregation), draw the Fig. A3 / "
    "depth / heatmap / decomposition figures and the qualitative panels, run Table A1 "
    "(whole / TLC / tiles) and the window sweep for the deblurring models, and write "
    "OUT/REPORT.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``reproduce``."""
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--quick", action="store_true", help="one photo, reduced settings (about 4 min)")
    p.add_argument(
        "--checkpoints", nargs="+", metavar="CKPT", help="tlc-probe checkpoints (default: shipped)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier main job in OUT (refused without it)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the main job and print the per-model summary; returns 0."""
    from ..jobs.reproduce import reproduce

    if args.checkpoints:
        existing(args.checkpoints, "--checkpoints", kind="file")
    writable_folder(args.out)
    r = reproduce(
        args.out, quick=args.quick, checkpoints=args.checkpoints, overwrite=args.overwrite
    )
    for row in r["summary"]:
        print(
            f"  {row['model']} {row['task']} {row['stat']}: TLC reduces W1 at "
            f"{row['frac_w1_improved']:.0%} of {row['n_sites']} sites, median W1 ratio "
            f"tlc/whole {row['median_w1_ratio']:.2f}"
        )
    print(f"wrote {args.out}/REPORT.md in {r['seconds']['total']:.0f} s")
    return 0
