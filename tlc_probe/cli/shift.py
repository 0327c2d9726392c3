"""``tlc-probe shift``: KL / JS / W1 tables from collected statistics."""

from __future__ import annotations

import argparse
import time

from .paths import existing

NAME = "shift"
HELP = "KL / JS / W1 between the train regime and whole / tlc / tiles, per site"
DESCRIPTION = (
    "Shift metrics from collected statistics: for every (model, task, site, stat) and "
    "channel (and all channels pooled), W1 (scipy semantics), W1 / std(train), "
    "KL(train || other) and Jensen-Shannon on bins fixed from the train values (see "
    "tlc_probe.metrics.shift). Writes shift.csv, shift.parquet and summary.csv (fraction of "
    "sites where TLC reduces the shift, median W1 ratio tlc/whole)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shift``."""
    p.add_argument("stats", nargs="+", help="statistics directories (or parent folders)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--pooled-only", action="store_true", help="skip per-channel rows")


def run(args: argparse.Namespace) -> int:
    """Write the tables and print the summary; returns 0."""
    from ..jobs.render import markdown
    from ..jobs.shift import shift_outputs

    existing(args.stats, "statistics")
    t0 = time.perf_counter()
    r = shift_outputs(args.stats, args.out, per_channel=not args.pooled_only)
    print(markdown(r["summary"].round(3)))
    print(
        f"wrote {', '.join(str(p) for p in r['paths'].values())} ({len(r['table'])} rows) in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0
