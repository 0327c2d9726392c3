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

    tr = sub.add_parser(
        "train",
        help="train a zoo model on patches of degraded bundled photos",
        description="Patch training (AdamW, cosine schedule, L1 over all stage outputs) on "
        "random crops of the degraded training photos, validation PSNR on the whole test "
        "photos; writes OUT (weights + metadata, train_size = --patch) and OUT.resume.pt.",
    )
    tr.add_argument("--model", required=True, help="zoo name: hinet, mprnet, nafnet, ffanet")
    tr.add_argument("--task", required=True, choices=("deblur", "derain", "dehaze"))
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tlc-probe`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
