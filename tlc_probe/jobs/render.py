"""Markdown: tables, the Table A1 layout, and ``REPORT.md`` of the main job."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    cols = list(table.columns)
    rows = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join(rows)


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


def _rel(path: Path, base: Path) -> str:
    return str(path.relative_to(base)).replace("\\", "/")


def report_md(
    out: Path,
    result: dict[str, Any],
    summ: pd.DataFrame,
    pooled: pd.DataFrame,
    figs: list[Path],
    benches: dict[str, dict[str, Any]],
) -> str:
    """``REPORT.md`` of the main job written to ``out``: the summary table, the figures
    (paths relative to ``out``), the largest shifts of the pooled shift table, Table A1
    of each benchmarked checkpoint and the run settings and timings."""
    pngs = [p for p in figs if p.suffix == ".png"]

    def img(p: Path, alt: str) -> str:
        return f"![{alt}]({_rel(p, out)})"

    lines = [
        "# tlc-probe report",
        "",
        "Global-statistics drift between patch training and whole-image inference, and what",
        "test-time local conversion (TLC) does to it, for the checkpoints shipped in",
        "the package (`tlc_probe/checkpoints`) on the bundled test photos"
        + (" (**--quick**: one photo, reduced settings)." if result["quick"] else "."),
        "",
        "## The claim, measured: does TLC pull the statistics back to training?",
        "",
        "Per model and statistic, over the global-aggregation sites: fraction of sites where",
        "the shift from the training-patch distribution is smaller with TLC than with",
        "whole-image inference (W1 and KL), and the median ratio W1(tlc~train) /",
        "W1(whole~train) (< 1: TLC is closer to training).",
        "",
        markdown(summ.round(3)),
        "",
        "## Fig. A3: distributions at one site (green train, blue whole, red TLC, purple tiles)",
        "",
    ]
    lines += [img(p, p.stem) for p in pngs if "-a3-" in p.name] + [""]
    lines += ["## Where the shift builds up: normalised W1 against site depth", ""]
    lines += [img(p, p.stem) for p in pngs if p.stem.endswith("-depth")] + [""]
    lines += ["## Site x comparison heatmaps", ""]
    lines += [img(p, p.stem) for p in pngs if p.stem.endswith("-heatmap")] + [""]
    top = pooled[pooled["stat"] == "mean"].sort_values("w1_norm", ascending=False)
    cols = ["model", "site", "kind", "depth", "comparison", "w1", "w1_norm", "kl", "js"]
    lines += [
        "## Largest shifts (mean statistic, all channels pooled)",
        "",
        markdown(top[cols].head(12).round(4)),
        "",
        "Full tables: `shift/shift.csv` (per channel and pooled), `shift/summary.csv`.",
        "",
        "## Table A1 on our data: whole image vs TLC vs overlapping tiles",
        "",
    ]
    for stem, b in benches.items():
        lines += [f"### {stem}", "", b["markdown"], ""]
        d = out / "bench" / stem
        if (d / "sweep.png").exists():
            lines += [img(d / "sweep.png", "window sweep")]
        lines += [img(d / "seams.png", "seam crops"), ""]
    lines += ["## Qualitative (Fig. A4-A6 analogues)", ""]
    lines += [img(p, p.stem) for p in pngs if p.stem.startswith("qualitative-")] + [""]
    secs = result["seconds"]
    lines += [
        "## Run",
        "",
        "Checkpoints: " + ", ".join(f"`{Path(c).name}`" for c in result["checkpoints"]) + ".",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()) + ".",
        "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()) + ".",
        "",
    ]
    return "\n".join(lines)
