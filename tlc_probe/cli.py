"""The ``tlc-probe`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from . import __version__


def _reproduce(args: argparse.Namespace) -> int:
    from .report import reproduce

    r = reproduce(args.out, quick=args.quick)
    for row in r["summary"]:
        print(
            f"  {row['model']} {row['task']} {row['stat']}: TLC reduces W1 at "
            f"{row['frac_w1_improved']:.0%} of {row['n_sites']} sites, median W1 ratio "
            f"tlc/whole {row['median_w1_ratio']:.2f}"
        )
    print(f"wrote {args.out}/REPORT.md in {r['seconds']['total']:.0f} s")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        model=args.model,
        task=args.task,
        out=args.out,
        preset=args.preset,
        patch=args.patch,
        iters=args.iters,
        batch=args.batch,
        lr=args.lr,
        n_per_photo=args.n_per_photo,
        seed=args.seed,
        val_every=args.val_every,
    )
    t0 = time.perf_counter()
    r = train(cfg, resume=args.resume)
    print(
        f"{args.model}/{args.task}: {r['iterations']} iterations, loss {r['loss']:.4f}, "
        f"test PSNR {r['input_psnr']:.2f} dB (input) -> {r['output_psnr']:.2f} dB (output), "
        f"{time.perf_counter() - t0:.0f} s; wrote {args.out}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import markdown, psnr_table

    table = psnr_table(args.checkpoints, seed=args.seed).round(2)
    print(markdown(table) if args.markdown else table.to_string(index=False))
    return 0


def _collect(args: argparse.Namespace) -> int:
    from .probe.regimes import CollectConfig, collect_checkpoint
    from .probe.sites import parse_depths

    if args.resume and args.overwrite:
        raise SystemExit("tlc-probe collect: --resume and --overwrite exclude each other")
    try:
        cfg = CollectConfig(
            regimes=tuple(r.strip() for r in args.regimes.split(",") if r.strip()),
            kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
            names=tuple(args.sites) if args.sites else None,
            depths=parse_depths(args.depths),
            positions=args.positions,
            n_crops=args.crops,
            crop_batch=args.batch,
            tile_overlap=args.overlap,
            tile_batch=args.batch,
            base_size=args.base_size,
            fast_imp=args.fast,
            seed=args.seed,
            keep_nonfinite=args.keep_nonfinite,
            writer=args.writer,
        )
    except ValueError as e:
        print(f"tlc-probe collect: error: {e}", file=sys.stderr)
        return 2
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "refuse"
    try:
        r = collect_checkpoint(
            args.checkpoint,
            args.out,
            task=args.task,
            train_size=args.train_size,
            model_name=args.model,
            preset=args.preset,
            data=args.data,
            layout=args.layout,
            train_data=args.train_data,
            n_per_photo=args.n_per_photo,
            config=cfg,
            mode=mode,
        )
    except (ValueError, FileExistsError) as e:
        print(f"tlc-probe collect: error: {e}", file=sys.stderr)
        return 2
    for regime in cfg.regimes:
        print(
            f"  {regime}: {r.rows[regime]} rows in {r.written[regime]} new part files"
            + (f", {r.skipped[regime]} already complete" if r.skipped[regime] else "")
        )
    print(f"wrote {args.out} in {r.seconds:.1f} s")
    return 0


def _shift(args: argparse.Namespace) -> int:
    from .evaluate import markdown
    from .shift import read_stats, shift_table, summary, write_shift

    t0 = time.perf_counter()
    try:
        stats = read_stats(args.stats)
    except (FileNotFoundError, ValueError) as e:
        print(f"tlc-probe shift: error: {e}", file=sys.stderr)
        return 2
    try:
        table = shift_table(stats, per_channel=not args.pooled_only)
        summ = summary(table)
    except (KeyError, ValueError) as e:
        print(f"tlc-probe shift: error: not a statistics table ({e})", file=sys.stderr)
        return 2
    paths = write_shift(table, args.out)
    print(markdown(summ.round(3)))
    print(
        f"wrote {', '.join(str(p) for p in paths.values())} ({len(table)} rows) in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .report import stats_figures

    t0 = time.perf_counter()
    try:
        paths = stats_figures(args.stats, args.out, sites=args.sites, stat=args.stat)
    except (FileNotFoundError, ValueError) as e:
        print(f"tlc-probe plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .report import bench_outputs

    t0 = time.perf_counter()
    if args.sizes is None:  # --quick times a quarter of the paper's 720 x 1280 pixels
        args.sizes = ["360x640"] if args.quick else ["720x1280"]
    try:
        sizes = [tuple(int(v) for v in s.lower().split("x", 1)) for s in args.sizes]
    except ValueError:
        print(
            f"tlc-probe bench: error: --sizes takes HxW, e.g. 720x1280, got {args.sizes}",
            file=sys.stderr,
        )
        return 2
    res = bench_outputs(
        args.checkpoint,
        args.out,
        quick=args.quick,
        sizes=sizes,
        overlaps=args.overlaps,
        repeats=args.repeats,
        sweep=not args.no_sweep,
    )
    print(res["markdown"])
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s")
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
        description="The main job on the embedded default: for every checkpoint shipped in "
        "data/checkpoints, collect the four regimes' statistics on the bundled photos, compute "
        "the shift tables, draw the Fig. A3 / depth / heatmap figures and the qualitative "
        "panels, run Table A1 (whole / TLC / tiles) and the window sweep for the deblurring "
        "models, and write OUT/REPORT.md.",
    )
    rep.add_argument("--out", default="results", help="output folder (default: results)")
    rep.add_argument("--quick", action="store_true", help="one photo, reduced settings (< 2 min)")
    rep.set_defaults(func=_reproduce)

    tr = sub.add_parser(
        "train",
        help="train a zoo model on patches of degraded bundled photos",
        description="Patch training (AdamW, cosine schedule, L1 over all stage outputs) on "
        "random crops of the degraded training photos, validation PSNR on the whole test "
        "photos; writes OUT (weights + metadata, train_size = --patch) and OUT.resume.pt.",
    )
    tr.add_argument("--model", required=True, help="zoo name: hinet, mprnet, nafnet, ffanet")
    tr.add_argument(
        "--task", required=True, choices=("deblur", "derain", "dehaze"), help="degradation"
    )
    tr.add_argument("--out", required=True, help="checkpoint path to write")
    tr.add_argument("--preset", default="tiny", help="model preset (default: tiny)")
    tr.add_argument("--patch", type=int, default=64, help="training patch size (default: 64)")
    tr.add_argument("--iters", type=int, default=2000, help="optimizer steps (default: 2000)")
    tr.add_argument("--batch", type=int, default=8, help="patches per step (default: 8)")
    tr.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    tr.add_argument(
        "--n-per-photo",
        type=int,
        default=4,
        help="degraded versions of each training photo (default: 4)",
    )
    tr.add_argument("--val-every", type=int, default=250, help="steps between validations")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT and OUT.resume.pt")
    tr.set_defaults(func=_train)

    ev = sub.add_parser(
        "evaluate",
        help="PSNR of checkpoints on the test photos: input, whole, TLC, tiles",
        description="Mean PSNR (dB) on the held-out test photos degraded for each "
        "checkpoint's task: the input, whole-image inference, TLC (the checkpoint's "
        "train_size) and tiles of train_size with overlap 16.",
    )
    ev.add_argument("checkpoints", nargs="+", help="tlc-probe checkpoints")
    ev.add_argument("--markdown", action="store_true", help="print a markdown table")
    ev.add_argument("--seed", type=int, default=0, help="degradation seed (default: 0)")
    ev.set_defaults(func=_evaluate)

    co = sub.add_parser(
        "collect",
        help="record global-site statistics in the train / whole / tlc / tiles regimes",
        description="Run a checkpoint in the regimes of the paper's Fig. A3 with forward hooks "
        "on every global-aggregation site (instance norm, SE / channel-attention pooling) and "
        "stream the statistics into a Parquet directory (regime=*/part-*.parquet + _run.json). "
        "train: random train_size crops of the training images; whole: whole test images; "
        "tlc: the TLC-converted model on them; tiles: overlapping train_size tiles of them.",
    )
    co.add_argument("--checkpoint", required=True, help="tlc-probe or official checkpoint")
    co.add_argument("--out", required=True, help="statistics directory to write")
    co.add_argument("--task", help="deblur | derain | dehaze (default: from the checkpoint)")
    co.add_argument(
        "--regimes", default="train,whole,tlc,tiles", help="comma list (default: all four)"
    )
    co.add_argument("--kinds", default="in,se", help="site kinds, comma list (default: in,se)")
    co.add_argument(
        "--sites", nargs="+", metavar="PATTERN", help="fnmatch patterns of site names (all)"
    )
    co.add_argument("--depths", help="execution-order range lo:hi, inclusive (default: all)")
    co.add_argument(
        "--positions", type=int, default=16, help="TLC grid positions per axis (default: 16)"
    )
    co.add_argument("--crops", type=int, default=64, help="training crops (default: 64)")
    co.add_argument(
        "--batch", type=int, default=16, help="crops or tiles per forward pass (default: 16)"
    )
    co.add_argument("--overlap", type=int, default=16, help="tiles overlap, px (default: 16)")
    co.add_argument("--base-size", type=int, help="TLC base size, px (default: 1.5 x train)")
    co.add_argument("--fast", action="store_true", help="TLC with the fast_imp approximation")
    co.add_argument("--train-size", type=int, help="required if the checkpoint lacks it")
    co.add_argument("--model", help="zoo architecture for a checkpoint without metadata")
    co.add_argument("--preset", default="official", help="its preset (default: official)")
    co.add_argument("--data", help="paired test folder (default: the bundled photos)")
    co.add_argument(
        "--layout", default="pairs", choices=("gopro", "sots", "pairs"), help="--data layout"
    )
    co.add_argument("--train-data", help="paired folder of training images (train regime)")
    co.add_argument(
        "--n-per-photo",
        type=int,
        default=1,
        help="degradations per bundled test photo (default: 1)",
    )
    co.add_argument("--seed", type=int, default=0, help="crops / degradation seed (default: 0)")
    co.add_argument("--keep-nonfinite", action="store_true", help="write NaN/Inf rows too")
    co.add_argument("--writer", default="0", help="writer id in part-file names (default: 0)")
    co.add_argument("--resume", action="store_true", help="complete an interrupted run")
    co.add_argument("--overwrite", action="store_true", help="replace an existing run")
    co.set_defaults(func=_collect)

    sh = sub.add_parser(
        "shift",
        help="KL / JS / W1 between the train regime and whole / tlc / tiles, per site",
        description="Shift metrics from collected statistics: for every (model, task, site, "
        "stat) and channel (and all channels pooled), W1 (scipy semantics), W1 / std(train), "
        "KL(train || other) and Jensen-Shannon on bins fixed from the train values (see "
        "tlc_probe.shift). Writes shift.csv, shift.parquet and summary.csv (fraction of sites "
        "where TLC reduces the shift, median W1 ratio tlc/whole).",
    )
    sh.add_argument("stats", nargs="+", help="statistics directories (or parent folders)")
    sh.add_argument("--out", required=True, help="output folder")
    sh.add_argument("--pooled-only", action="store_true", help="skip per-channel rows")
    sh.set_defaults(func=_shift)

    pl = sub.add_parser(
        "plot",
        help="Fig. A3 distributions, depth profiles and heatmaps from statistics",
        description="Figures from collected statistics (PNG and PDF): per model the Fig. A3 "
        "panels (train green vs whole blue; train vs TLC red; train vs tiles) for the site "
        "of each kind with the largest whole~train shift and any --sites, the depth profile "
        "of the normalised W1 and a site x comparison heatmap.",
    )
    pl.add_argument("stats", nargs="+", help="statistics directories (or parent folders)")
    pl.add_argument("--out", required=True, help="output folder")
    pl.add_argument("--sites", nargs="+", default=(), help="extra site names to draw")
    pl.add_argument("--stat", default="mean", choices=("mean", "std"), help="statistic")
    pl.set_defaults(func=_plot)

    be = sub.add_parser(
        "bench",
        help="Table A1: PSNR / SSIM / time / memory / seams of whole, TLC and tiles",
        description="Inference-scheme benchmark of a checkpoint on the held-out test photos "
        "(PSNR, SSIM, seam index) and on resized 720x1280 images (time, memory): whole, tlc, "
        "tlc-fast, tlc-grid (fast with squeeze-excitation heads on the block grid), tiles of "
        "train_size with the paper's overlaps (1/16 and 1/2 of the tile) "
        "or --overlaps; all schemes interleaved, median of --repeats after a warm-up. Also "
        "the TLC window sweep (base_size / train_size 1 .. 4 and global). Writes bench.csv, "
        "bench.md, sweep.csv and the figures.",
    )
    be.add_argument("--checkpoint", required=True, help="tlc-probe checkpoint")
    be.add_argument("--out", default="results/bench", help="output folder")
    be.add_argument(
        "--quick",
        action="store_true",
        help="one repeat, one photo, short sweep, timing at 360x640 unless --sizes (< 2 min)",
    )
    be.add_argument(
        "--sizes", nargs="*", help="timing sizes HxW (default: 720x1280; --quick: 360x640)"
    )
    be.add_argument("--overlaps", type=int, nargs="+", help="tile overlaps in px")
    be.add_argument("--repeats", type=int, default=3, help="timed repeats (default: 3)")
    be.add_argument("--no-sweep", action="store_true", help="skip the window sweep")
    be.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tlc-probe`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
