"""``tlc-probe plot``: Fig. A3 distributions, depth profiles and heatmaps."""

from __future__ import annotations

import argparse
import time

from .paths import existing, writable_folder

NAME = "plot"
HELP = "Fig. A3 distributions, depth profiles and heatmaps from statistics"
DESCRIPTION = (
    "Figures from collected statistics (PNG and PDF): per model the Fig. A3 panels (train "
    "green vs whole blue; train vs TLC red; train vs tiles) for the site of each kind with "
    "the largest whole~train shift and any --sites, the depth profile of the normalised W1 "
    "and a site x comparison heatmap."
)
FLAGS = {"sites [": "--sites ["}


ATTN_STATS = ("q_rms", "k_rms", "logit_mean")  # tlc_probe.tlc.attention.ATTN_STATS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``plot``."""
    p.add_argument("stats", nargs="+", help="statistics directories (or parent folders)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sites", nargs="+", default=(), help="extra site names to draw")
    p.add_argument(
        "--reliance",
        nargs="+",
        metavar="CSV",
        help="reliance tables of tlc-probe reliance: the decomposition bars hatch the sites "
        "the output does not rely on",
    )
    p.add_argument(
        "--stat",
        default="mean",
        choices=("mean", "std", *ATTN_STATS),
        help="statistic (default: mean; attention sites show their logit_mean for it)",
    )


def run(args: argparse.Namespace) -> int:
    """Draw and write the figures; returns 0."""
    from ..jobs.figures import stats_figures
    from .allocator import keep_freed_memory

    keep_freed_memory()
    existing(args.stats, "statistics")
    reliance = None
    if args.reliance:
        from ..jobs.shift import read_reliance

        existing(args.reliance, "--reliance", kind="file")
        reliance = read_reliance(args.reliance)
    writable_folder(args.out)
    t0 = time.perf_counter()
    paths = stats_figures(args.stats, args.out, sites=args.sites, stat=args.stat, reliance=reliance)
    if not paths:
        raise ValueError(
            f"nothing to draw from {' '.join(args.stats)}: every figure compares with the "
            f"train regime and needs {args.stat!r} rows of it (collect --regimes "
            "train,whole,tlc,tiles,window)"
        )
    print(f"wrote {len(paths)} files to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0
