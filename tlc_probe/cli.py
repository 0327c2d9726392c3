"""The ``tlc-probe`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from . import __version__


def _reproduce(args: argparse.Namespace) -> int:
    from .demo import run_demo

    t0 = time.perf_counter()
    s = run_demo(args.out, quick=args.quick, seed=args.seed)
    ratio = s["time_ratio_vs_whole"]
    print(f"tlc-probe reproduce: {s['what']}")
    print(f"  photos: {', '.join(s['photos'])}; train_size {s['train_size']}")
    same = s["max_abs_diff_tlc_vs_global_at_train_size"]
    print(f"  TLC == global at train size: max diff {same:.1e}")
    print("  time vs whole: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))
    for site, d in s["w1"].items():
        print(f"  W1 {site}: whole~train {d['whole']:.4f}, tlc~train {d['tlc']:.4f}")
    print(f"  wrote {args.out}/REPORT.md, summary.json, site_means.png/.pdf")
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tlc-probe`` with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="tlc-probe",
        description="Measure global-statistics drift between patch training and whole-image "
        "inference, and how test-time local conversion (TLC) pulls it back.",
    )
    parser.add_argument("--version", action="version", version=f"tlc-probe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "reproduce",
        help="run the main job on the embedded default (bundled photos)",
        description="Run the main job on the embedded default and write a report. For now "
        "the converter demo: untrained ToyNet, TLC checks, timings, pooled-mean shift.",
    )
    rep.add_argument("--out", default="results", help="output folder (default: results)")
    rep.add_argument("--quick", action="store_true", help="one photo, fewer crops (~10 s)")
    rep.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    rep.set_defaults(func=_reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tlc-probe`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
