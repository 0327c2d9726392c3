"""Table A1 on a GPU: time and peak memory of whole-image inference, TLC and tiles for the
official presets, at the paper's 720x1280, in fp32 and under bf16 / fp16 autocast.

Run (on a CUDA machine, the CUDA build of torch installed; see docs/benchmarks.md)::

    python benchmarks/gpu_table_a1.py --out gpu_table_a1            # 720x1280, cuda
    python benchmarks/gpu_table_a1.py --device cpu --size 64x96 --models nafnet \\
        --precisions fp32 bf16 --repeats 1 --train-size 32 --out /tmp/a1   # a smoke run

The official presets of MPRNet, NAFNet, HINet and Restormer (``tlc_probe.models.build(name,
"official")``) run with random weights (seeded): time and memory do not depend on the
weights. Schemes: ``whole``, ``tlc`` (exact), ``tlc-fast`` and ``tiles-<o>`` for the
paper's overlaps (16 and 128 px of a 256 tile, scaled to ``--train-size``), batch 1.
Per model and precision, after one warm-up run of each scheme, the schemes run
``--repeats`` times interleaved (the order rotated every repeat); each repeat is timed
with ``torch.cuda.synchronize()`` on both sides on CUDA. Reported: the median time (s),
the median of the paired ratios to ``whole`` in the same repeat, and the peak memory
(``torch.cuda.max_memory_allocated`` over one run, MiB; not measured on CPU). Writes
``table_a1.csv`` and ``table_a1.md`` (with the paper's RTX 2080Ti numbers for MPRNet as
the anchor) into ``--out`` and prints the markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from tlc_probe.models import build
from tlc_probe.schemes import default_overlaps, make_scheme

#: The paper's Table A1 (MPRNet on GoPro, RTX 2080Ti, 720x1280): seconds per image of
#: whole, tlc, tlc-fast, tiles overlapping 16 and 128 px (of 256) — the schemes' order here.
PAPER_MPRNET_2080TI = (1.60, 2.03, 1.69, 2.60, 6.50)
MODELS = ("mprnet", "nafnet", "hinet", "restormer")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
COLUMNS = [
    "model",
    "device",
    "precision",
    "size",
    "scheme",
    "time_s",
    "ratio",
    "peak_mem_mb",
    "repeats",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _peak_mb(run, x: torch.Tensor, device: torch.device, dtype) -> float:
    if device.type != "cuda":
        return float("nan")
    torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad(), _autocast(device, dtype):
        run(x)
    _sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def table_a1(
    name: str,
    size: tuple[int, int],
    device: torch.device,
    precision: str,
    repeats: int,
    train_size: int,
    seed: int = 0,
) -> list[dict]:
    """One model's rows: each scheme's median time, paired ratio to whole and peak memory."""
    torch.manual_seed(seed)
    model = build(name, "official").eval().to(device)
    names = ["whole", "tlc", "tlc-fast", *(f"tiles-{o}" for o in default_overlaps(train_size))]
    schemes = {n: make_scheme(n, model, train_size).run for n in names}
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(seed)).to(device)
    dtype = PRECISIONS[precision]
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.no_grad(), _autocast(device, dtype):
        for run in schemes.values():  # warm-up: cuDNN autotuning, allocator, TLC calibration
            run(x)
        _sync(device)
        for rep in range(repeats):
            for n in names[rep % len(names) :] + names[: rep % len(names)]:
                _sync(device)
                t = time.perf_counter()
                schemes[n](x)
                _sync(device)
                times[n].append(time.perf_counter() - t)
    rows = []
    for n in names:
        ratios = [a / b for a, b in zip(times[n], times["whole"], strict=True)]
        rows.append(
            {
                "model": name,
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "precision": precision,
                "size": f"{size[0]}x{size[1]}",
                "scheme": n,
                "time_s": statistics.median(times[n]),
                "ratio": statistics.median(ratios),
                "peak_mem_mb": _peak_mb(schemes[n], x, device, dtype),
                "repeats": repeats,
            }
        )
    del model, schemes
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def markdown(table: pd.DataFrame) -> str:
    """One row per model and precision, a column per scheme: ``time s (ratio x) / MiB``;
    the paper's MPRNet row (RTX 2080Ti, fp32) first, its tiles under the tiles at the
    same overlap fractions."""
    schemes = list(dict.fromkeys(table["scheme"]))
    lines = [
        "| model | precision | device | " + " | ".join(schemes) + " |",
        "|---" * (3 + len(schemes)) + "|",
    ]
    paper = [f"{t:.2f} s" for t in PAPER_MPRNET_2080TI[: len(schemes)]]
    paper += ["-"] * (len(schemes) - len(paper))
    lines.append("| mprnet (paper) | fp32 | RTX 2080Ti | " + " | ".join(paper) + " |")
    for (model, precision, device), g in table.groupby(
        ["model", "precision", "device"], sort=False
    ):
        cells = []
        for s in schemes:
            r = g[g["scheme"] == s]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            mem = "" if pd.isna(r["peak_mem_mb"]) else f" / {r['peak_mem_mb']:.0f} MiB"
            cells.append(f"{r['time_s']:.3f} s ({r['ratio']:.2f}x){mem}")
        lines.append(f"| {model} | {precision} | {device} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    if not (h.isdigit() and w.isdigit()) or int(h) < 1 or int(w) < 1:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 720x1280, got {text!r}")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu")
    ap.add_argument("--size", type=_size, default=(720, 1280), help="HxW (default 720x1280)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per scheme (median)")
    ap.add_argument("--train-size", type=int, default=256, help="training crop of the presets")
    ap.add_argument("--out", type=Path, default=Path("gpu_table_a1"), help="output folder")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda, but this torch has no CUDA device: use --device cpu")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    rows = []
    for name in args.models:
        for precision in args.precisions:
            rows += table_a1(name, args.size, device, precision, args.repeats, args.train_size)
            print(f"{name} {precision}: done", flush=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "table_a1.csv", index=False)
    md = markdown(table)
    (args.out / "table_a1.md").write_text(md + "\n")
    print(md)
    return table


if __name__ == "__main__":
    main()
