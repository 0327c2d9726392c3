"""``tlc-probe shift`` on stores too large to read whole: rows, seconds, peak RSS.

Run: ``python benchmarks/shift_store.py [--images 60 180] [--sites 40] [--channels 64]
[--in-memory]``.

Each size is a store in the project's layout, written with the store's own writer
(:func:`tlc_probe.store.parts.write_part`, one part file per image and regime): one model,
``--sites`` SE sites (mean only) × ``--channels`` channels; per image a ``tlc`` part of
16 × 16 local-mean positions and a ``whole`` part, plus 64 training crops in chunks of 8.
With the defaults, 60 images are ~39.5 M rows and 180 images ~118 M (the issue's 40 M- and
120 M-row stores).

Each measurement runs in a fresh process (peak RSS is that process's ``ru_maxrss``; the
time includes starting Python and importing tlc_probe): ``shift`` = ``tlc-probe shift
STORE --out DIR`` (read one site at a time, two sites at once in threads).
``--in-memory`` also times the whole-store path
(``shift_table(read_stats(...))``) at the smallest size — it needs ~400 bytes a row.
The sizes run one after the other in one invocation, so their ratios are comparable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tlc_probe.store.parts import part_path, write_part

GRID = 16
TRAIN_CROPS = 64


def _part(sites: int, channels: int, samples: list[str], grid: int, rng) -> pd.DataFrame:
    """Rows of ``samples`` at every site, channel and (y, x) of a ``grid`` x ``grid`` map
    (no positions when ``grid`` is 0)."""
    n_pos = grid * grid if grid else 1
    n = sites * channels * len(samples) * n_pos
    site = np.repeat(np.arange(sites), channels * len(samples) * n_pos)
    per_site = np.arange(n) % (channels * len(samples) * n_pos)
    frame = pd.DataFrame(
        {
            "model": "bench-model",
            "task": "deblur",
            "site": pd.Categorical.from_codes(site, [f"body.{i}.se" for i in range(sites)]),
            "kind": "se",
            "depth": (site % 8).astype(np.int32),
            "sample": pd.Categorical.from_codes(
                (per_site // n_pos) % len(samples), list(dict.fromkeys(samples))
            ),
            "channel": (per_site // (len(samples) * n_pos)).astype(np.int32),
            "y": pd.array((per_site % n_pos) // grid if grid else [None] * n, dtype="Int32"),
            "x": pd.array(per_site % grid if grid else [None] * n, dtype="Int32"),
            "stat": "mean",
            "value": rng.normal(size=n).astype(np.float32),
        }
    )
    return frame


def write_store(root: Path, images: int, sites: int, channels: int) -> int:
    """Write the store of the module docstring under ``root``; returns its row count."""
    rng = np.random.default_rng(0)
    rows = 0
    for chunk in range(TRAIN_CROPS // 8):
        f = _part(sites, channels, [f"crop{chunk * 8 + i}" for i in range(8)], 0, rng)
        write_part(f, part_path(root, "train", chunk))
        rows += len(f)
    for i in tqdm(range(images), desc=f"write {images} images"):
        for regime, grid in (("whole", 0), ("tlc", GRID)):
            f = _part(sites, channels, [f"img{i}"], grid, rng)
            write_part(f, part_path(root, regime, i))
            rows += len(f)
    return rows


_CHILD = """
import contextlib, io, json, resource, sys, time
t = time.perf_counter()
if sys.argv[1] == "shift":  # the command line, in this process: imports included
    from tlc_probe.cli.main import main
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["shift", sys.argv[2], "--out", sys.argv[3]]) == 0
    import pandas as pd
    n = len(pd.read_parquet(sys.argv[3] + "/shift.parquet"))
else:
    from tlc_probe.metrics import shift_table
    from tlc_probe.store import read_stats
    n = len(shift_table(read_stats(sys.argv[2])))
print(json.dumps({"s": time.perf_counter() - t, "rss_mb":
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "table_rows": n}))
"""


def measure(path: str, root: Path, out: Path) -> dict:
    """Run one path in a fresh process: {"s", "rss_mb", "table_rows"}."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, path, str(root), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Write each store, measure, print one line per (size, path) and a ratio line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, nargs="+", default=[60, 180])
    ap.add_argument("--sites", type=int, default=40)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--in-memory", action="store_true", help="also the whole-store path")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for images in args.images:
            root = Path(tmp) / f"store-{images}"
            t = time.perf_counter()
            rows = write_store(root, images, args.sites, args.channels)
            disk = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20
            print(
                f"{images} images: {rows:,} rows, {disk:.0f} MB, written in "
                f"{time.perf_counter() - t:.0f} s",
                flush=True,
            )
            paths = ["shift"] + (
                ["in-memory"] if args.in_memory and images == min(args.images) else []
            )
            for path in paths:
                m = measure(path, root, Path(tmp) / f"out-{images}")
                results.append((images, rows, path, m))
                print(
                    f"  {path:9s}: {m['s']:6.1f} s, {rows / m['s'] / 1e6:5.2f} M rows/s, "
                    f"peak RSS {m['rss_mb']:7.0f} MB, {m['table_rows']:,} table rows",
                    flush=True,
                )
            for p in root.rglob("*.parquet"):
                p.unlink()
    shift = [(r, m) for _i, r, p, m in results if p == "shift"]
    if len(shift) >= 2:
        (r0, m0), (r1, m1) = shift[0], shift[-1]
        print(
            f"rows x{r1 / r0:.2f}: time x{m1['s'] / m0['s']:.2f}, "
            f"peak RSS x{m1['rss_mb'] / m0['rss_mb']:.2f}"
        )


if __name__ == "__main__":
    main()
