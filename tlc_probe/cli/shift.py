"""``tlc-probe shift``: KL / JS / W1 tables from collected statistics."""

from __future__ import annotations

import argparse
import time

from .paths import existing, writable_folder

NAME = "shift"
HELP = "KL / JS / W1 between the regimes per site, and the shift's decomposition"
DESCRIPTION = (
    "Shift metrics from collected statistics: for every (model, task, site, stat) and "
    "channel (and all channels pooled), W1 (scipy semantics), W1 / std(train), "
    "KL(train || other) and Jensen-Shannon on bins fixed from the train values (see "
    "tlc_probe.metrics.shift). Writes shift.csv, shift.parquet, decomposition.csv (per site: "
    "content = tiles~train, context = window~tiles, aggregation = whole~window, and their "
    "shares; only aggregation is TLC's business) and summary.csv (fraction of sites where "
    "TLC reduces the shift, median W1 ratio tlc/whole, median shares; with --reliance the "
    "sites the output relies on, and a flag when it relies on none). The store is read one "
    "site at a time: memory stays about one site's rows, however many images it holds."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shift``."""
    p.add_argument("stats", nargs="+", help="statistics directories (or parent folders)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pooled-only", action="store_true", help="skip per-channel rows")
    p.add_argument(
        "--reference",
        default="train",
        choices=("train", "tiles"),
        help="regime every other is compared with (default: train; tiles = the test "
        "images' own train_size tiles, which removes the content difference)",
    )
    p.add_argument(
        "--reliance",
        nargs="+",
        metavar="CSV",
        help="reliance tables of tlc-probe reliance, joined per site",
    )


def run(args: argparse.Namespace) -> int:
    """Write the tables and print the summary; returns 0."""
    from ..jobs.render import markdown
    from ..jobs.shift import read_reliance, shift_outputs
    from .allocator import keep_freed_memory

    keep_freed_memory()
    existing(args.stats, "statistics")
    if args.reliance:
        existing(args.reliance, "--reliance", kind="file")
    writable_folder(args.out)
    t0 = time.perf_counter()
    r = shift_outputs(
        args.stats,
        args.out,
        per_channel=not args.pooled_only,
        reference=args.reference,
        reliance=read_reliance(args.reliance) if args.reliance else None,
        progress=True,
    )
    print(markdown(r["summary"].round(3)))
    print(
        f"wrote {', '.join(str(p) for p in r['paths'].values())} ({len(r['table'])} rows) in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0
