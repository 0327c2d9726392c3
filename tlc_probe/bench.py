"""Inference-scheme benchmark: the supplementary material's Table A1 for any checkpoint,
a seam (boundary-artifact) index, and the TLC window sweep.

Schemes: ``whole`` (the global model on the whole image), ``tlc`` (exact local
statistics), ``tlc-fast`` (``fast_imp``), ``tlc-grid`` (``fast_imp`` with ``grid_head``:
the heads of squeeze-excitation pools evaluated on the block grid; only for models with
such pools), and ``tiles-<o>``: tiles of the checkpoint's
train_size overlapping by ``o`` pixels, overlaps averaged (:func:`tlc_probe.tiled_inference`).
The paper uses 256-tiles with overlaps 16 and 128 for a 256-trained model; the default
overlaps here are the same fractions of the tile (1/16 and 1/2: 4 and 32 px for a
64-trained model).

Seam index. Let r = output - ground truth (per channel) and, for a horizontal line i
(between rows i - 1 and i), D_i = mean over channels and columns of |r_i - r_(i-1)|;
likewise for vertical lines. The index is the mean of D over the lines where a tile edge
lies (inside the image) divided by its mean over the lines at least ``margin`` pixels
from any tile edge. Natural residuals have no preferred lines, so a seamless output
gives about 1; a tile seam (a jump of the residual along the edge) gives more. For the
whole-image and TLC outputs the index is computed on the lines of the tiles of the
smallest overlap, so every row of the table is comparable.

Timing: all schemes interleaved within each repeat (machine drift hits them equally) in
an order rotated from repeat to repeat (so position effects average out),
median over ``repeats`` after a warm-up; ``time_ratio`` is against ``whole`` on the
same images. Peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on Linux CPUs the
rise of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs)
over its resident set before the run, after ``malloc_trim`` has returned freed heap
pages — an approximate figure; NaN where neither is available. It is taken in the
first timed run on the largest image (no extra pass).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from skimage.metrics import structural_similarity
from torch import nn
from tqdm.auto import tqdm

from .data import SyntheticPairs
from .metrics import psnr
from .models import build_from_checkpoint, model_label
from .tiling import tile_starts, tiled_inference
from .tlc import convert, tlc_sites

#: Overlaps as fractions of the tile: the paper's 16 and 128 px of a 256-px tile.
PAPER_OVERLAP_FRACTIONS = (16 / 256, 128 / 256)
#: base_size / train_size ratios of the window sweep (the paper's default is 1.5).
SWEEP_RATIOS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
CSV_COLUMNS = (
    "model",
    "image_size",
    "scheme",
    "overlap",
    "tlc",
    "psnr",
    "ssim",
    "time_s",
    "time_ratio",
    "tile_pixel_ratio",
    "peak_mem_mb",
    "seam_index",
)


@dataclass
class Scheme:
    """One inference scheme: ``name``, tile ``overlap`` (px, None if untiled), ``tlc``
    ('no' | 'exact' | 'fast' | 'grid') and ``run`` mapping (1, 3, H, W) -> (1, 3, H, W)."""

    name: str
    overlap: int | None
    tlc: str
    run: Callable[[torch.Tensor], torch.Tensor]


def default_overlaps(tile: int) -> list[int]:
    """The paper's overlaps (16 and 128 px of a 256 tile) scaled to ``tile`` px."""
    return sorted({max(0, min(tile - 1, round(f * tile))) for f in PAPER_OVERLAP_FRACTIONS})


def _checkpoint_and_photos(
    checkpoint: str | Path, n_photos: int | None, seed: int
) -> tuple[nn.Module, dict, int, str, list[dict]]:
    """(model in eval mode, metadata, train_size, label, the first ``n_photos`` test items
    (all if None) degraded for the checkpoint's task with ``seed``)."""
    model, meta = build_from_checkpoint(checkpoint)
    data = SyntheticPairs(meta["task"], split="test", n_per_photo=1, seed=seed)
    n = len(data) if n_photos is None else min(n_photos, len(data))
    return model, meta, int(meta["train_size"]), model_label(meta), [data[i] for i in range(n)]


def make_schemes(
    model: nn.Module, train_size: int, overlaps: Sequence[int], base_size: int | None = None
) -> list[Scheme]:
    """whole, tlc, tlc-fast, tlc-grid (if the model has squeeze-excitation pools) and one
    ``tiles-<o>`` per overlap (tiles of ``train_size``)."""
    exact = convert(model, train_size=train_size, base_size=base_size)
    fast = convert(model, train_size=train_size, base_size=base_size, fast_imp=True)
    out = [Scheme("whole", None, "no", model), Scheme("tlc", None, "exact", exact)]
    out.append(Scheme("tlc-fast", None, "fast", fast))
    if any(s["kind"] == "se" for s in tlc_sites(fast)):
        grid = convert(
            model, train_size=train_size, base_size=base_size, fast_imp=True, grid_head=True
        )
        out.append(Scheme("tlc-grid", None, "grid", grid))
    for o in overlaps:
        run = lambda x, o=o: tiled_inference(model, x, tile=train_size, overlap=o)  # noqa: E731
        out.append(Scheme(f"tiles-{o}", o, "no", run))
    return out


def tile_edges(n: int, tile: int, overlap: int) -> list[int]:
    """Lines (index i = between pixels i - 1 and i) where an edge of a tile of
    :func:`tlc_probe.tile_starts` lies strictly inside [0, n)."""
    edges = set()
    for s in tile_starts(n, tile, overlap):
        edges.update(e for e in (s, s + tile) if 0 < e < n)
    return sorted(edges)


def seam_index(
    output: torch.Tensor,
    target: torch.Tensor,
    tile: int,
    overlap: int,
    margin: int = 2,
) -> float:
    """Boundary-artifact index of an (C, H, W) ``output`` against ``target`` for tiles of
    ``tile`` px overlapping by ``overlap`` (see the module docstring): mean |jump| of the
    residual across tile-edge lines / the same on lines >= ``margin`` px from every edge.
    NaN when the image holds no tile edge or no line away from them."""
    r = (output.double() - target.double()).reshape(-1, *output.shape[-2:])
    h, w = r.shape[-2:]
    dy = (r[:, 1:, :] - r[:, :-1, :]).abs().mean(dim=(0, 2))  # line i+1 between rows i, i+1
    dx = (r[:, :, 1:] - r[:, :, :-1]).abs().mean(dim=(0, 1))
    on, off = [], []
    for d, n in ((dy, h), (dx, w)):
        edges = np.array(tile_edges(n, tile, overlap), dtype=int)
        lines = np.arange(1, n)
        if len(edges):
            dist = np.abs(lines[:, None] - edges[None, :]).min(axis=1)
        else:
            dist = np.full(len(lines), n)
        vals = d.numpy()
        on.append(vals[dist == 0])
        off.append(vals[dist >= margin])
    on_v, off_v = np.concatenate(on), np.concatenate(off)
    if not len(on_v) or not len(off_v) or off_v.mean() == 0:
        return float("nan")
    return float(on_v.mean() / off_v.mean())


def ssim(output: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM (scikit-image, Gaussian-free 7x7 windows, data range 1) of (C, H, W) images."""
    a = output.detach().double().permute(1, 2, 0).cpu().numpy()
    b = target.detach().double().permute(1, 2, 0).cpu().numpy()
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0))


def _rss_kb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the figure is only less tight
        pass


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak extra memory (MB) of calling ``fn``: CUDA peak allocation on a GPU, on a
    Linux CPU the rise of the peak resident set over the resident set before the call
    (approximate); NaN if not measurable."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    try:
        _malloc_trim()  # give freed heap pages back, so the scheme's own peak must fault in
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident set
        base = _rss_kb("VmRSS")
        fn()
        return (_rss_kb("VmHWM") - base) / 1024
    except OSError:
        return float("nan")


def _timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t


def timing_image(size: tuple[int, int], photo: torch.Tensor) -> torch.Tensor:
    """A (1, 3, H, W) timing input of ``size`` made by resizing ``photo`` (C, h, w)
    bilinearly (inference time does not depend on the content)."""
    return F.interpolate(photo[None], size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def bench(
    checkpoint: str | Path,
    *,
    sizes: Sequence[tuple[int, int]] = ((720, 1280),),
    overlaps: Sequence[int] | None = None,
    repeats: int = 3,
    n_photos: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Table A1 for ``checkpoint``: one row per scheme and image size.

    Image size ``test``: the held-out test photos degraded for the checkpoint's task
    (their own sizes; ``n_photos`` of them, default all): mean PSNR / SSIM / seam index
    against the clean photo, time = mean over photos of the median per-photo time.
    Each size in ``sizes`` (H, W): a test photo resized to it, time and memory only.

    Returns a DataFrame with :data:`CSV_COLUMNS`; ``tile_pixel_ratio`` is the
    theoretical time ratio of a tiles scheme (tile pixels processed / image pixels);
    ``peak_mem_mb`` is measured once per scheme on the largest image (NaN elsewhere).
    """
    device = torch.device(device)
    model, meta, ts, name, items = _checkpoint_and_photos(checkpoint, n_photos, seed)
    model = model.to(device)
    overlaps = list(overlaps) if overlaps is not None else default_overlaps(ts)
    schemes = make_schemes(model, ts, overlaps)
    cases = [("test", it["input"][None], it["target"]) for it in items]
    cases += [(f"{h}x{w}", timing_image((h, w), items[0]["input"]), None) for h, w in sizes]
    times: dict[tuple[int, str], list[float]] = {}
    quality: dict[tuple[int, str], tuple[float, float, float]] = {}
    memory: dict[tuple[str, str], float] = {}
    seam_tile_overlap = min(overlaps) if overlaps else max(1, ts // 16)
    with torch.no_grad():
        warm = timing_image((ts * 2, ts * 3), items[0]["input"]).to(device)
        for s in schemes:
            s.run(warm)
        steps = repeats * len(cases) * len(schemes)
        bar = tqdm(total=steps, desc=f"bench {name}", disable=not progress)
        # memory once per scheme, in the first timed run on the largest image
        mem_case = max(range(len(cases)), key=lambda i: cases[i][1].shape[-2:].numel())
        for rep in range(repeats):
            for ci, (size, x, y) in enumerate(cases):
                x = x.to(device)
                k = rep % len(schemes)  # rotated order: no scheme always runs first
                for s in schemes[k:] + schemes[:k]:
                    bar.set_postfix(size=size, scheme=s.name)
                    got: dict[str, object] = {}

                    def call(s=s, x=x, got=got):
                        got["out"], got["dt"] = _timed(lambda: s.run(x), device)

                    if rep == 0 and ci == mem_case:
                        memory[(size, s.name)] = peak_memory_mb(call, device)
                    else:
                        call()
                    out, dt = got["out"], got["dt"]
                    times.setdefault((ci, s.name), []).append(dt)
                    if rep == 0 and y is not None:
                        o = out[0].clamp(0, 1).cpu()
                        ov = s.overlap if s.overlap is not None else seam_tile_overlap
                        quality[(ci, s.name)] = (psnr(o, y), ssim(o, y), seam_index(o, y, ts, ov))
                    bar.update(1)
        bar.close()
    rows = []
    sizes_seen = list(dict.fromkeys(c[0] for c in cases))
    for size in sizes_seen:
        idx = [i for i, c in enumerate(cases) if c[0] == size]
        med = {
            s.name: float(np.mean([np.median(times[(i, s.name)]) for i in idx])) for s in schemes
        }
        for s in schemes:
            q = [quality[(i, s.name)] for i in idx if (i, s.name) in quality]
            h, w = cases[idx[0]][1].shape[-2:]
            rows.append(
                {
                    "model": name,
                    "image_size": size,
                    "scheme": s.name,
                    "overlap": s.overlap if s.overlap is not None else 0,
                    "tlc": s.tlc,
                    "psnr": float(np.mean([v[0] for v in q])) if q else math.nan,
                    "ssim": float(np.mean([v[1] for v in q])) if q else math.nan,
                    "time_s": med[s.name],
                    "time_ratio": med[s.name] / med["whole"],
                    "tile_pixel_ratio": _tile_pixel_ratio(h, w, ts, s.overlap),
                    "peak_mem_mb": memory.get((size, s.name), math.nan),
                    "seam_index": float(np.nanmean([v[2] for v in q])) if q else math.nan,
                }
            )
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def _tile_pixel_ratio(h: int, w: int, tile: int, overlap: int | None) -> float:
    if overlap is None:
        return 1.0
    ny, nx = len(tile_starts(h, tile, overlap)), len(tile_starts(w, tile, overlap))
    return ny * nx * min(tile, h) * min(tile, w) / (h * w)


def window_sweep(
    checkpoint: str | Path,
    ratios: Sequence[float] = SWEEP_RATIOS,
    *,
    n_photos: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """PSNR / SSIM of TLC on the test photos as base_size / train_size goes over
    ``ratios``, plus a ``global`` row (whole-image inference, the limit of an infinite
    window). Columns: model, ratio (float, inf for global), base_size, psnr, ssim."""
    model, meta, ts, name, items = _checkpoint_and_photos(checkpoint, n_photos, seed)
    nets = [
        (float(r), round(r * ts), convert(model, train_size=ts, base_size=round(r * ts)))
        for r in ratios
    ]
    nets.append((math.inf, None, model))
    rows = []
    with torch.no_grad():
        for r, base, net in tqdm(nets, desc=f"window sweep {name}", disable=not progress):
            outs = [net(it["input"][None])[0].clamp(0, 1) for it in items]
            rows.append(
                {
                    "model": name,
                    "ratio": r,
                    "base_size": base,
                    "psnr": float(
                        np.mean([psnr(o, it["target"]) for o, it in zip(outs, items, strict=True)])
                    ),
                    "ssim": float(
                        np.mean([ssim(o, it["target"]) for o, it in zip(outs, items, strict=True)])
                    ),
                }
            )
    return pd.DataFrame(rows)


def table_a1(df: pd.DataFrame) -> str:
    """The benchmark as a markdown table laid out like the paper's Table A1 (Input,
    #Overlap, TLC, PSNR, Time) plus SSIM, time ratio, theoretical tile ratio, peak memory
    and seam index; one block of rows per image size."""
    head = "| Input | #Overlap | TLC | PSNR (dB) | SSIM | Time (s) | Ratio | Tile px ratio "
    head += "| Peak mem (MB) | Seam index |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples(index=False):
        inp = "patches" if r.scheme.startswith("tiles") else "whole image"
        ov = str(r.overlap) if r.scheme.startswith("tiles") else "-"
        tlc = {"no": "", "exact": "yes", "fast": "yes (fast)", "grid": "yes (fast, grid head)"}[
            r.tlc
        ]
        lines.append(
            f"| {inp} ({r.image_size}) | {ov} | {tlc} | {_f(r.psnr, 2)} | {_f(r.ssim, 4)} | "
            f"{_f(r.time_s, 3)} | {_f(r.time_ratio, 2)} | {_f(r.tile_pixel_ratio, 2)} | "
            f"{_f(r.peak_mem_mb, 0)} | {_f(r.seam_index, 2)} |"
        )
    return "\n".join(lines)


def _f(v: float, nd: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def sweep_figure(sweep: pd.DataFrame) -> Figure:
    """PSNR of TLC against base_size / train_size (log x), the global model as a dashed
    line; one line per model in ``sweep``. Returns the Figure (4.5 x 3 in)."""
    fig = Figure(figsize=(4.5, 3.0))
    ax = fig.subplots()
    for model, g in sweep.groupby("model", sort=False):
        loc = g[np.isfinite(g["ratio"])]
        (line,) = ax.plot(loc["ratio"], loc["psnr"], marker="o", label=f"{model} TLC")
        glob = g[~np.isfinite(g["ratio"])]
        if len(glob):
            ax.axhline(
                float(glob["psnr"].iloc[0]),
                ls="--",
                color=line.get_color(),
                label=f"{model} global",
            )
    ax.set_xscale("log")
    ax.set_xticks(list(SWEEP_RATIOS), [f"{r:g}" for r in SWEEP_RATIOS])
    ax.set_xlabel("base_size / train_size")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("TLC window sweep (test photos)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def seam_crops_figure(
    checkpoint: str | Path,
    overlaps: Sequence[int] | None = None,
    photo: int = 0,
    seed: int = 0,
    gain: float = 4.0,
) -> Figure:
    """Fig. A1/A2 analogue: a crop around a tile corner of test photo ``photo``: the
    output of whole / TLC / each tiles scheme (top) and its |error| x ``gain`` (bottom)
    with the tile edges drawn, the seam index in each title (NaN where no tile edge lies
    inside the photo: then the crop is centred on the photo). Returns the Figure."""
    model, meta, ts, name, items = _checkpoint_and_photos(checkpoint, photo + 1, seed)
    item = items[photo]
    overlaps = list(overlaps) if overlaps is not None else default_overlaps(ts)
    x, y = item["input"][None], item["target"]
    schemes = [
        s for s in make_schemes(model, ts, overlaps) if s.name not in ("tlc-fast", "tlc-grid")
    ]
    o0 = min(overlaps) if overlaps else 0
    ey, ex = tile_edges(y.shape[1], ts, o0), tile_edges(y.shape[2], ts, o0)
    # centred on a tile corner; on the photo's centre along an axis one tile spans
    cy = ey[len(ey) // 2] if ey else y.shape[1] // 2
    cx = ex[len(ex) // 2] if ex else y.shape[2] // 2
    half = ts
    y0, x0 = max(0, cy - half), max(0, cx - half)
    crop = (slice(y0, y0 + 2 * half), slice(x0, x0 + 2 * half))
    fig = Figure(figsize=(2.2 * len(schemes), 4.6))
    axes = fig.subplots(2, len(schemes), squeeze=False)
    with torch.no_grad():
        for j, s in enumerate(schemes):
            o = s.run(x)[0].clamp(0, 1)
            ov = s.overlap if s.overlap is not None else o0
            si = seam_index(o, y, ts, ov)
            err = ((o - y).abs().mean(0) * gain).clamp(0, 1)
            axes[0, j].imshow(o[:, crop[0], crop[1]].permute(1, 2, 0).numpy())
            axes[1, j].imshow(err[crop].numpy(), cmap="magma", vmin=0, vmax=1)
            axes[0, j].set_title(f"{s.name}\nseam index {si:.2f}", fontsize=8)
            ov_edges = (tile_edges(y.shape[1], ts, ov), tile_edges(y.shape[2], ts, ov))
            for e in ov_edges[0]:
                if y0 < e < y0 + 2 * half:
                    axes[1, j].axhline(e - y0 - 0.5, color="cyan", lw=0.4, alpha=0.6)
            for e in ov_edges[1]:
                if x0 < e < x0 + 2 * half:
                    axes[1, j].axvline(e - x0 - 0.5, color="cyan", lw=0.4, alpha=0.6)
            for ax in axes[:, j]:
                ax.set_xticks([])
                ax.set_yticks([])
    axes[1, 0].set_ylabel(f"|error| x {gain:g}", fontsize=8)
    fig.suptitle(f"{name}: {item['id']}, tile {ts}", fontsize=9)
    fig.tight_layout()
    return fig
