"""``tlc-probe bench``: Table A1, the window sweep and the seam crops of a checkpoint."""

from __future__ import annotations

import argparse
import re
import time

from .options import FLAGS as MODEL_FLAGS
from .options import add_data_options, add_model_options, identity, image_source
from .paths import existing, writable_folder

NAME = "bench"
HELP = "Table A1: PSNR / SSIM / time / memory / seams of whole, TLC and tiles"
DESCRIPTION = (
    "Inference-scheme benchmark of a checkpoint on its test images (the held-out bundled "
    "photos, or --data; PSNR, SSIM, seam index) and on the first of them resized to "
    "720x1280 (time, memory): whole, tlc (exact), tlc-fast (block-grid approximation), "
    "tiles of train_size "
    "with the paper's overlaps (1/16 and 1/2 of the tile) or --overlaps; all schemes "
    "interleaved, median of --repeats after a warm-up. Also the TLC window sweep "
    "(base_size / train_size 1 .. 4 and global). Writes bench.csv, bench.md, sweep.csv and "
    "the figures."
)


FLAGS = {**MODEL_FLAGS, "overlap must": "--overlaps must"}


def parse_size(text: str) -> tuple[int, int]:
    """'720x1280' -> (720, 1280); ``ValueError`` naming ``--sizes`` otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x", 1))
    except ValueError:
        raise ValueError(f"--sizes takes HxW, e.g. 720x1280, got {text!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"--sizes must be positive, got {text!r}")
    return h, w


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``bench``."""
    add_model_options(p)
    add_data_options(p)
    p.add_argument("--out", default="results/bench", help="output folder")
    p.add_argument("--images", type=int, help="use the first N test images (default: all)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="one repeat, one test image, sweep over 1, 1.5, 2 and global, timing at "
        "360x640 unless --sizes (15-70 s for the shipped tiny models on 2 CPU cores)",
    )
    p.add_argument(
        "--sizes", nargs="*", help="timing sizes HxW (default: 720x1280; --quick: 360x640)"
    )
    p.add_argument("--overlaps", type=int, nargs="+", help="tile overlaps in px")
    p.add_argument(
        "--schemes",
        nargs="+",
        help="schemes to run besides whole (always run: the time ratios are to it), e.g. "
        "tlc tiles-8 (default: tlc, tlc-fast, and tiles at --overlaps)",
    )
    p.add_argument(
        "--plan",
        help="a window plan (plan.json, or the folder holding it) made for this checkpoint: "
        "adds the scheme tlc-tuned",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (default: 3)")
    p.add_argument("--no-sweep", action="store_true", help="skip the window sweep")


def run(args: argparse.Namespace) -> int:
    """Benchmark, write the files and print Table A1; returns 0."""
    from ..jobs.bench import bench_outputs
    from ..schemes import TLC_MODES

    existing([args.checkpoint], "--checkpoint", kind="file")
    images = image_source(args)
    if args.images is not None and args.images < 1:
        raise ValueError(f"--images must be >= 1, got {args.images}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.overlaps and (bad := [o for o in args.overlaps if o < 0]):
        raise ValueError(f"--overlaps must be >= 0, got {bad}")
    if args.sizes is None:  # --quick times a quarter of the paper's 720 x 1280 pixels
        args.sizes = ["360x640"] if args.quick else ["720x1280"]
    sizes = [parse_size(s) for s in args.sizes]
    for name in args.schemes or ():
        if name not in TLC_MODES and not re.fullmatch(r"tiles-\d+", name):
            raise ValueError(
                f"--schemes: unknown scheme {name!r}; schemes: {sorted(TLC_MODES)} and "
                "tiles-<overlap px>"
            )
    plan = None
    if args.plan is not None:
        from ..tlc.plan import Plan

        existing([args.plan], "--plan")
        plan = Plan.load(args.plan)
    elif "tlc-tuned" in (args.schemes or ()):
        raise ValueError("--schemes tlc-tuned needs --plan plan.json")
    writable_folder(args.out)
    t0 = time.perf_counter()
    res = bench_outputs(
        args.checkpoint,
        args.out,
        quick=args.quick,
        sizes=sizes,
        overlaps=args.overlaps,
        repeats=args.repeats,
        sweep=not args.no_sweep,
        schemes=args.schemes,
        images=images,
        n_photos=args.images,
        plan=plan,
        **identity(args),
    )
    print(res["markdown"])
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0
