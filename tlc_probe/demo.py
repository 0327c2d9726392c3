"""The converter demo: the smallest end-to-end run that exists before the model zoo,
training and the probe land. ``tlc-probe reproduce`` runs it.

On bundled photos and an *untrained* (seeded) ToyNet with instance-norm and
channel-attention sites it: converts the net with TLC for 64-px training patches and
checks that nothing changes at that size; times whole / TLC / fast TLC / tiled
inference on the whole photos; records the means that each channel-attention pool
aggregates on 64-px crops (green), on whole photos (blue) and with TLC (red); measures
the shift by Wasserstein-1; and writes a figure, a JSON summary and REPORT.md.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from torch import nn
from tqdm.auto import tqdm

from . import __version__
from .data import load_photo
from .models import ToyNet
from .tiling import tiled_inference
from .tlc import convert, tlc_sites

TRAIN_SIZE = 64
SE_SITES = ("ca1.avg_pool", "ca2.avg_pool")
COLOURS = {"train": "tab:green", "whole": "tab:blue", "tlc": "tab:red"}


def random_crops(img: torch.Tensor, size: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` random ``size`` x ``size`` crops of a (3, H, W) image -> (n, 3, size, size)."""
    _, h, w = img.shape
    ys = torch.randint(0, h - size + 1, (n,), generator=gen).tolist()
    xs = torch.randint(0, w - size + 1, (n,), generator=gen).tolist()
    return torch.stack([img[:, y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])


def site_outputs(model: nn.Module, site: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """What module ``site`` of ``model`` returns during forward passes over ``inputs``:
    one detached CPU tensor per input, e.g. (N, C, 1, 1) for a global pool and
    (N, C, H, W) for a local one."""
    modules = dict(model.named_modules())
    if site not in modules:
        raise ValueError(f"no module {site!r} in {type(model).__name__}")
    got: list[torch.Tensor] = []
    handle = modules[site].register_forward_hook(lambda _m, _a, out: got.append(out.detach().cpu()))
    try:
        with torch.no_grad():
            for x in inputs:
                model(x)
    finally:
        handle.remove()
    return got


def pooled_means(
    model: nn.Module, site: str, inputs: list[torch.Tensor], grid: int = 16
) -> np.ndarray:
    """Values a pool site outputs over ``inputs``: one per channel for a global pool,
    ``grid`` x ``grid`` regularly spaced positions per channel for a local one. 1-D array."""
    values = []
    for out in site_outputs(model, site, inputs):
        if out.shape[-2:] != (1, 1):
            ys = torch.linspace(0, out.shape[-2] - 1, grid).round().long()
            xs = torch.linspace(0, out.shape[-1] - 1, grid).round().long()
            out = out[..., ys, :][..., xs]
        values.append(out.flatten())
    return torch.cat(values).double().numpy()


def _median_times(schemes: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in schemes.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in schemes}
    for _ in range(repeats):  # interleaved, so machine drift hits every scheme alike
        for name, fn in schemes.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _figure(values: dict[str, dict[str, np.ndarray]], w1: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(len(values), 2, figsize=(9, 3.2 * len(values)), squeeze=False)
    for row, (site, vals) in enumerate(values.items()):
        lo = min(float(np.quantile(v, 0.001)) for v in vals.values())
        hi = max(float(np.quantile(v, 0.999)) for v in vals.values())
        bins = np.linspace(lo, hi, 60)
        for col, other in enumerate(("whole", "tlc")):
            ax = axes[row, col]
            for regime in ("train", other):
                label = regime if regime == "train" else f"{regime}  W1={w1[site][other]:.4f}"
                sns.histplot(
                    vals[regime],
                    bins=bins,
                    stat="density",
                    element="step",
                    alpha=0.35,
                    color=COLOURS[regime],
                    label=label,
                    ax=ax,
                )
            ax.set_title(f"({'ab'[col]}) {site}: train vs {other}", fontsize=9)
            ax.set_xlabel("pooled mean")
            ax.legend(fontsize=8)
    fig.suptitle("Means aggregated by channel-attention pools (untrained ToyNet, 64-px crops)")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)


def run_demo(
    out: Path | str = "results",
    quick: bool = False,
    seed: int = 0,
    photos: tuple[str, ...] | None = None,
) -> dict:
    """Run the converter demo and write ``out``/REPORT.md, summary.json, site_means.{png,pdf}.

    ``quick`` uses one photo, 16 crops and one timing repeat (about 10 s on 2 cores);
    the default four photos, 64 crops per photo and three repeats. Returns the summary
    dict (also written as JSON): checks, median times (s) and ratios, W1 per site.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = photos or (("astronaut",) if quick else ("astronaut", "coffee", "chelsea", "rocket"))
    n_crops, repeats = (16, 1) if quick else (64, 3)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ToyNet(c=16).eval()
    tlc = convert(model, train_size=TRAIN_SIZE)
    fast = convert(model, train_size=TRAIN_SIZE, fast_imp=True)
    imgs = [load_photo(n)[None] for n in tqdm(names, desc="photos", leave=False)]
    crops = [random_crops(img[0], TRAIN_SIZE, n_crops, gen) for img in imgs]

    with torch.no_grad():
        at_train = max(float((tlc(c) - model(c)).abs().max()) for c in crops)
        whole_vs_tlc = max(float((tlc(x) - model(x)).abs().max()) for x in imgs)
        fast_vs_exact = max(float((fast(x) - tlc(x)).abs().max()) for x in imgs)
        schemes = {
            "whole": lambda: [model(x) for x in imgs],
            "tlc": lambda: [tlc(x) for x in imgs],
            "tlc-fast": lambda: [fast(x) for x in imgs],
            "tiles-16": lambda: [tiled_inference(model, x, TRAIN_SIZE, 16) for x in imgs],
            "tiles-32": lambda: [tiled_inference(model, x, TRAIN_SIZE, 32) for x in imgs],
        }
        times = _median_times(schemes, repeats)

    values, w1 = {}, {}
    for site in tqdm(SE_SITES, desc="sites", leave=False):
        values[site] = {
            "train": pooled_means(
                model, site, [c[i : i + 1] for c in crops for i in range(len(c))]
            ),
            "whole": pooled_means(model, site, imgs),
            "tlc": pooled_means(tlc, site, imgs),
        }
        ref = values[site]["train"]
        w1[site] = {k: float(wasserstein_distance(ref, values[site][k])) for k in ("whole", "tlc")}
    _figure(values, w1, out / "site_means")

    summary = {
        "what": "converter demo on an untrained ToyNet (trained models: later issues)",
        "photos": {n: list(x.shape[-2:]) for n, x in zip(names, imgs, strict=True)},
        "train_size": TRAIN_SIZE,
        "base_size": int(1.5 * TRAIN_SIZE),
        "seed": seed,
        "sites": [{**s, "kernel_size": list(s["kernel_size"])} for s in tlc_sites(tlc)],
        "max_abs_diff_tlc_vs_global_at_train_size": at_train,
        "max_abs_diff_tlc_vs_global_whole_photo": whole_vs_tlc,
        "max_abs_diff_fast_vs_exact_whole_photo": fast_vs_exact,
        "median_time_s": times,
        "time_ratio_vs_whole": {k: v / times["whole"] for k, v in times.items()},
        "w1": w1,
        "n_values": {s: {k: int(v.size) for k, v in d.items()} for s, d in values.items()},
        "versions": {
            "tlc_probe": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "REPORT.md").write_text(_report(summary))
    return summary


def _report(s: dict) -> str:
    rows = "\n".join(
        f"| {k} | {v:.3f} | {s['time_ratio_vs_whole'][k]:.2f} |"
        for k, v in s["median_time_s"].items()
    )
    shift = "\n".join(
        f"| `{site}` | {d['whole']:.4f} | {d['tlc']:.4f} | {d['tlc'] / d['whole']:.2f} |"
        for site, d in s["w1"].items()
    )
    sites = "\n".join(
        f"| `{x['name']}` | {x['kind']} | {tuple(x['feature_size'])} | {tuple(x['kernel_size'])} |"
        for x in s["sites"]
    )
    photos = ", ".join(f"{n} {h}x{w}" for n, (h, w) in s["photos"].items())
    return f"""# tlc-probe — converter demo

What ran: an **untrained**, seeded ToyNet (instance-norm and channel-attention sites at
full and half resolution) converted by `tlc_probe.convert(train_size={s["train_size"]})`
(base size {s["base_size"]}), on the bundled photos: {photos}. The trained models, the
probe, the shift metrics and the Table A1 benchmark replace this demo as their issues land.

## Sites and windows

| site | kind | feature size at train size | window |
|---|---|---|---|
{sites}

## Checks

- max |TLC - global| on {s["train_size"]}-px crops:
  {s["max_abs_diff_tlc_vs_global_at_train_size"]:.2e} (windows cover the maps: must be ~0)
- max |TLC - global| on whole photos: {s["max_abs_diff_tlc_vs_global_whole_photo"]:.3e}
- max |fast TLC - exact TLC| on whole photos: {s["max_abs_diff_fast_vs_exact_whole_photo"]:.3e}

## Time per pass over the photos (median, this machine)

| scheme | time (s) | ratio vs whole |
|---|---|---|
{rows}

## Shift of the pooled means from training crops (Wasserstein-1)

| site | W1(whole~train) | W1(tlc~train) | ratio |
|---|---|---|---|
{shift}

![pooled means](site_means.png)

Green: {s["train_size"]}-px crops (what training sees); blue: whole photos; red: whole
photos with TLC (local means sampled on a 16x16 grid).
"""
