"""What a GoPro-size collection costs: seconds, rows and bytes per 720 x 1280 image for an
official-width model, extrapolated to the 1111 GoPro test images.

Run: ``python benchmarks/gopro_collect.py [--model hinet] [--preset official]
[--images 1] [--regimes whole,tlc] [--positions 16]``.

The model has random weights (the time and the row count do not depend on them); the
images are random 720 x 1280 tensors. Each regime is collected alone (``collect``, one
part file per image), so the seconds are per regime and image on this machine, measured
one after the other in one run. The real run belongs on GPUs, one line::

    torchrun --standalone --nproc_per_node 8 -m tlc_probe.cli collect \\
        --checkpoint HINet-GoPro.pth --model hinet --task deblur --train-size 256 \\
        --data GoPro --layout gopro --out stats/hinet-gopro
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from tlc_probe.jobs.collect import CollectConfig, collect
from tlc_probe.models import available, build

GOPRO_TEST = 1111
H, W = 720, 1280


def main() -> None:
    """Collect each regime on ``--images`` random GoPro-size images; print per-image
    seconds, rows and bytes, and their extrapolation to 1111 images."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hinet")
    ap.add_argument("--preset", default="official")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--regimes", default="whole,tlc")
    ap.add_argument("--positions", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build(args.model, args.preset).eval()
    train_size = available()[args.model]["presets"][args.preset]["train_size"]
    g = torch.Generator().manual_seed(0)
    images = [
        {"input": torch.rand(3, H, W, generator=g), "id": f"img{i}"} for i in range(args.images)
    ]
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"{args.model}-{args.preset}: {n_params:.1f} M parameters, train_size {train_size}, "
        f"{args.images} image(s) of {H}x{W}, {torch.get_num_threads()} threads"
    )
    total_s = total_rows = total_bytes = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for regime in args.regimes.split(","):
            out = Path(tmp) / regime
            cfg = CollectConfig(regimes=(regime,), positions=args.positions)
            t = time.perf_counter()
            r = collect(
                model,
                out,
                model_name=args.model,
                task="deblur",
                train_size=train_size,
                test_data=images,
                config=cfg,
                progress=False,
            )
            s = (time.perf_counter() - t) / args.images
            rows = r.rows[regime] / args.images
            size = sum(p.stat().st_size for p in out.rglob("*.parquet")) / args.images
            total_s, total_rows, total_bytes = total_s + s, total_rows + rows, total_bytes + size
            print(
                f"  {regime:6s}: {s:7.1f} s/image, {rows:12,.0f} rows/image, "
                f"{size / 2**20:7.2f} MB/image"
            )
    print(
        f"per image, all regimes: {total_s:.1f} s, {total_rows:,.0f} rows, "
        f"{total_bytes / 2**20:.2f} MB"
    )
    print(
        f"x {GOPRO_TEST} GoPro test images: {total_s * GOPRO_TEST / 3600:.1f} h on this "
        f"machine, {total_rows * GOPRO_TEST / 1e6:,.0f} M rows, "
        f"{total_bytes * GOPRO_TEST / 2**30:.1f} GB"
    )


if __name__ == "__main__":
    main()
