"""``tlc-probe train``: patch training of a zoo model on degraded bundled photos."""

from __future__ import annotations

import argparse
import time

from .paths import existing, writable_folder

NAME = "train"
FLAGS = {
    "mode='resume'": "--resume",
    "mode='overwrite'": "--overwrite-stats",
    "iters must": "--iters must",
    "val_every must": "--val-every must",
    "patch must": "--patch must",
    "batch must": "--batch must",
    "n_per_photo must": "--n-per-photo must",
    "gate_lr_scale must": "--gate-lr-scale must",
    "lr must": "--lr must",
    "deadleaves must": "--deadleaves must",
    "seed must": "--seed must",
    "gate_lr_scale=": "--gate-lr-scale ",
}
HELP = "train a zoo model on patches of degraded bundled photos"
DESCRIPTION = (
    "Patch training (AdamW, cosine schedule, L1 over all stage outputs) on random crops of "
    "the degraded training photos, validation PSNR on the whole test photos; writes OUT "
    "(weights + metadata, train_size = --patch) and OUT.resume.pt. With --record-every N "
    "the global sites' statistics are recorded while it trains (tlc-probe plot draws them "
    "against the step)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``train``."""
    p.add_argument(
        "--model",
        required=True,
        help="zoo name: hinet, mprnet, nafnet, ffanet, restormer, spdnet",
    )
    p.add_argument(
        "--task", required=True, choices=("deblur", "derain", "dehaze"), help="degradation"
    )
    p.add_argument("--out", required=True, help="checkpoint path to write")
    p.add_argument("--preset", default="tiny", help="model preset (default: tiny)")
    p.add_argument("--patch", type=int, default=64, help="training patch size (default: 64)")
    p.add_argument("--iters", type=int, default=2000, help="optimizer steps (default: 2000)")
    p.add_argument("--batch", type=int, default=8, help="patches per step (default: 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    p.add_argument(
        "--n-per-photo",
        type=int,
        default=4,
        help="degraded versions of each training photo (default: 4)",
    )
    p.add_argument(
        "--deadleaves",
        type=int,
        default=0,
        metavar="N",
        help="mix N degraded dead-leaves images (384 px) into the training crops (default: 0)",
    )
    p.add_argument(
        "--gate-lr-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="learning-rate factor of the SE gates (the modules holding a global pool; default: 1)",
    )
    p.add_argument("--val-every", type=int, default=250, help="steps between validations")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue from OUT and OUT.resume.pt")
    p.add_argument(
        "--record-every",
        type=int,
        metavar="N",
        help="record the global sites' statistics every N steps (train batch, whole, tlc)",
    )
    p.add_argument(
        "--stats",
        help="statistics directory of --record-every (default: <OUT without .pt>-stats, "
        "replaced on every fresh run; a given --stats is never replaced unless "
        "--overwrite-stats)",
    )
    p.add_argument("--overwrite-stats", action="store_true", help="replace the --stats directory")
    p.add_argument(
        "--record-positions",
        type=int,
        default=8,
        help="TLC grid positions per axis when recording (default: 8)",
    )


def run(args: argparse.Namespace) -> int:
    """Train and print the final loss and PSNR; returns 0."""
    from ..jobs.train import TrainConfig, train

    if args.resume:
        existing([args.out, args.out + ".resume.pt"], "--out (with --resume)", kind="file")
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
        deadleaves=args.deadleaves,
        seed=args.seed,
        val_every=args.val_every,
        gate_lr_scale=args.gate_lr_scale,
    )
    t0 = time.perf_counter()
    if args.record_every is not None and args.record_every < 1:
        raise ValueError(f"--record-every must be >= 1, got {args.record_every}")
    if args.record_every is None and (args.stats or args.overwrite_stats):
        raise ValueError("--stats and --overwrite-stats go with --record-every N")
    if args.stats:  # checked before the model is built
        writable_folder(args.stats, "--stats")
    r = train(
        cfg,
        resume=args.resume,
        record_every=args.record_every,
        stats=args.stats,
        record_positions=args.record_positions,
        record_mode="overwrite" if args.overwrite_stats and not args.resume else None,
    )
    if "recorded_steps" in r:
        steps = r["recorded_steps"]
        shown = ", ".join(map(str, steps[:6])) + (" ..." if len(steps) > 6 else "")
        print(f"recorded {len(steps)} steps ({shown})")
    print(
        f"{args.model}/{args.task}: {r['iterations']} iterations, loss {r['loss']:.4f}, "
        f"test PSNR {r['input_psnr']:.2f} dB (input) -> {r['output_psnr']:.2f} dB (output), "
        f"{time.perf_counter() - t0:.0f} s; wrote {args.out}"
    )
    return 0
