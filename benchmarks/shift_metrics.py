"""Time :func:`tlc_probe.metrics.shift_table` on a synthetic ~10-million-row statistics frame.

Run: ``python benchmarks/shift_metrics.py [--models 2] [--sites 40] [--channels 32]``.

Shape of the frame (defaults): 2 models × 1 task × 40 sites (20 instance-norm sites with
``mean`` and ``std``, 20 SE sites with ``mean`` only: 60 site-statistics) × 32 channels =
3,840 per-channel groups, each holding

* ``train``: 64 crops, one value each;
* ``whole``: 16 images, one value each;
* ``tiles``: 16 images × 12 tiles, one value each;
* ``tlc``:   16 images × 12 × 13 local-mean positions (y, x set);

i.e. 2,768 values per group and 10,629,120 rows. The string columns have pandas' ``str``
dtype, as :func:`tlc_probe.store.read_stats` returns them. One timed run of ``shift_table``
(per channel and pooled, three comparisons) is reported as rows, seconds and rows/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from tlc_probe.metrics.shift import shift_table


def synthetic_stats(
    models: int = 2, sites: int = 40, channels: int = 32, seed: int = 0
) -> pd.DataFrame:
    """The frame described in the module docstring (a different shift per regime)."""
    rng = np.random.default_rng(seed)
    n_img, grid = 16, (12, 13)
    regimes = {  # regime -> (values per group, mean shift, sample names, y, x)
        "train": (64, 0.0, [f"crop{i}" for i in range(64)], None),
        "whole": (n_img, 0.8, [f"img{i}" for i in range(n_img)], None),
        "tiles": (n_img * 12, 0.3, [f"img{i}/t{t}" for i in range(n_img) for t in range(12)], None),
        "tlc": (
            n_img * grid[0] * grid[1],
            0.1,
            [f"img{i}" for i in range(n_img) for _ in range(grid[0] * grid[1])],
            np.tile(np.indices(grid).reshape(2, -1), n_img),
        ),
    }
    site_stats = [
        (f"enc.{s}.norm", "in", s, st) for s in range(sites // 2) for st in ("mean", "std")
    ]
    site_stats += [(f"dec.{s}.se.pool", "se", sites // 2 + s, "mean") for s in range(sites // 2)]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("model", "regime", "site", "kind")}
    cols.update({k: [] for k in ("depth", "sample", "channel", "y", "x", "stat", "value")})
    for m in range(models):
        for site, kind, depth, stat in site_stats:
            for regime, (n, shift, samples, pos) in regimes.items():
                size = n * channels
                cols["model"].append(np.full(size, f"net{m}-tiny", dtype=object))
                cols["regime"].append(np.full(size, regime, dtype=object))
                cols["site"].append(np.full(size, site, dtype=object))
                cols["kind"].append(np.full(size, kind, dtype=object))
                cols["stat"].append(np.full(size, stat, dtype=object))
                cols["depth"].append(np.full(size, depth, dtype=np.int32))
                cols["sample"].append(np.tile(np.asarray(samples, dtype=object), channels))
                cols["channel"].append(np.repeat(np.arange(channels, dtype=np.int32), n))
                yx = np.full((2, n), -1) if pos is None else pos
                cols["y"].append(np.tile(yx[0], channels))
                cols["x"].append(np.tile(yx[1], channels))
                loc = shift + 0.05 * np.repeat(np.arange(channels), n)
                cols["value"].append(rng.normal(loc, 1.0).astype(np.float32))
    data = {k: np.concatenate(v) for k, v in cols.items()}
    df = pd.DataFrame({k: data[k] for k in ("model", "regime", "site", "kind", "depth")})
    df.insert(1, "task", "deblur")
    for k in ("model", "task", "regime", "site", "kind"):
        df[k] = df[k].astype("str")
    df["sample"] = pd.array(data["sample"], dtype="str")
    df["channel"] = data["channel"]
    for k in ("y", "x"):
        df[k] = pd.arrays.IntegerArray(data[k].astype(np.int32), data[k] < 0)
    df["stat"] = pd.array(data["stat"], dtype="str")
    df["value"] = data["value"]
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--sites", type=int, default=40)
    ap.add_argument("--channels", type=int, default=32)
    args = ap.parse_args()
    t0 = time.perf_counter()
    stats = synthetic_stats(args.models, args.sites, args.channels)
    print(f"built {len(stats):,} rows in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    table = shift_table(stats)
    dt = time.perf_counter() - t0
    print(f"shift_table: {len(stats):,} rows -> {len(table):,} table rows in {dt:.2f} s")
    print(f"{len(stats) / dt:,.0f} rows/s")


if __name__ == "__main__":
    main()
