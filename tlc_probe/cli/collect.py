"""``tlc-probe collect``: record site statistics in the regimes into a Parquet store."""

from __future__ import annotations

import argparse

from .options import FLAGS as MODEL_FLAGS
from .options import add_data_options, add_model_options, identity, image_source
from .paths import existing

NAME = "collect"
HELP = "record global-site statistics in the train / whole / tlc / tiles / window regimes"
DESCRIPTION = (
    "Run a checkpoint in the regimes of the paper's Fig. A3 with forward hooks on every "
    "global-aggregation site (instance norm, SE / channel-attention pooling) and stream the "
    "statistics into a Parquet directory (regime=*/part-*.parquet + _run.json). train: "
    "random train_size crops of the training images; whole: whole test images; tlc: the "
    "TLC-converted model on them; tiles: overlapping train_size tiles of them; window: "
    "the whole test images, each site's statistics over windows of its training-time "
    "extent placed where the tiles lie (tiles -> window = context shift, window -> whole "
    "= aggregation shift, the part TLC acts on)."
)
FLAGS = {
    **MODEL_FLAGS,
    "mode='resume'": "--resume",
    "mode='overwrite'": "--overwrite",
    "out of the regimes": "out of --regimes",
    "another out": "another --out",
    "n_crops": "--crops",
    "crop_batch": "--batch",
    "positions": "--positions",
    "tile_overlap": "--overlap",
    "kinds": "--kinds",
    "base_size": "--base-size",
    "site pattern": "--sites pattern",
    "writer must": "--writer must",
}


def parse_depths(text: str | None) -> tuple[int | None, int | None] | None:
    """'3:10' -> (3, 10), ':5' -> (None, 5), '4' -> (4, 4), None/'' -> None.
    ``ValueError`` naming ``--depths`` for anything else."""
    if not text:
        return None
    try:
        if ":" not in text:
            return int(text), int(text)
        a, b = text.split(":", 1)
        return (int(a) if a else None, int(b) if b else None)
    except ValueError:
        raise ValueError(f"--depths takes lo:hi, lo: , :hi or one depth, got {text!r}") from None


def _items(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``collect``."""
    add_model_options(p)
    p.add_argument("--out", required=True, help="statistics directory to write")
    add_data_options(p, train=True)
    p.add_argument(
        "--regimes",
        default="train,whole,tlc,tiles,window",
        help="comma list (default: all five)",
    )
    p.add_argument(
        "--kinds", default="in,se,attn", help="site kinds, comma list (default: in,se,attn)"
    )
    p.add_argument(
        "--sites", nargs="+", metavar="PATTERN", help="fnmatch patterns of site names (all)"
    )
    p.add_argument("--depths", help="execution-order range lo:hi, inclusive (default: all)")
    p.add_argument(
        "--positions", type=int, default=16, help="TLC grid positions per axis (default: 16)"
    )
    p.add_argument("--crops", type=int, default=64, help="training crops (default: 64)")
    p.add_argument(
        "--batch",
        type=int,
        default=16,
        help="training crops per chunk, one part file each (default: 16)",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=16,
        help="overlap of the tiles and of the window regime's windows, px (default: 16)",
    )
    p.add_argument("--base-size", type=int, help="TLC base size, px (default: 1.5 x train)")
    p.add_argument("--fast", action="store_true", help="TLC with convert(mode='fast')")
    p.add_argument("--images", type=int, help="use the first N test images (default: all)")
    p.add_argument("--keep-nonfinite", action="store_true", help="write NaN/Inf rows too")
    p.add_argument("--writer", default="0", help="writer id in part-file names (default: 0)")
    p.add_argument("--resume", action="store_true", help="complete an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run")


def run(args: argparse.Namespace) -> int:
    """Collect and print the rows and part files per regime; returns 0."""
    from ..jobs.collect import CollectConfig, collect_checkpoint
    from ..jobs.distributed import close, shard_from_env

    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    existing([args.checkpoint], "--checkpoint", kind="file")
    images = image_source(args)
    if args.images is not None and args.images < 1:
        raise ValueError(f"--images must be >= 1, got {args.images}")
    cfg = CollectConfig(
        regimes=_items(args.regimes),
        kinds=_items(args.kinds),
        names=tuple(args.sites) if args.sites else None,
        depths=parse_depths(args.depths),
        positions=args.positions,
        n_crops=args.crops,
        crop_batch=args.batch,
        tile_overlap=args.overlap,
        base_size=args.base_size,
        fast_imp=args.fast,
        seed=args.seed,
        keep_nonfinite=args.keep_nonfinite,
        writer=args.writer,
    )
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "refuse"
    shard = shard_from_env()  # one process, or a rank of torchrun
    try:
        if shard.world_size > 1 and args.writer != "0":
            raise ValueError("under torchrun each rank writes as writer <rank>: drop --writer")
        ident = identity(args)
        r = collect_checkpoint(
            args.checkpoint,
            args.out,
            model_name=ident.pop("model"),
            **ident,
            images=images,
            n_images=args.images,
            config=cfg,
            mode=mode,
            shard=shard,
            device=shard.device if shard.world_size > 1 else None,
        )
    finally:
        close(shard)
    who = f"rank {shard.rank}/{shard.world_size}: " if shard.world_size > 1 else ""
    for regime in cfg.regimes:
        print(
            f"  {who}{regime}: {r.rows[regime]} rows in {r.written[regime]} new part files"
            + (f", {r.skipped[regime]} already complete" if r.skipped[regime] else "")
        )
    print(f"{who}wrote {args.out} in {r.seconds:.1f} s")
    return 0
