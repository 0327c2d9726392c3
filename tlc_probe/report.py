"""The jobs that chain the stages: figures from statistics, benchmark outputs, and the
main job ``reproduce`` (shipped checkpoints -> statistics -> shift -> figures -> Table A1
-> qualitative panels -> ``REPORT.md``). The CLI and the notebooks call these."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .evaluate import markdown

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "data" / "checkpoints"


def shipped_checkpoints(folder: str | Path = CHECKPOINTS) -> list[Path]:
    """The tlc-probe checkpoints shipped in ``data/checkpoints`` (sorted, no resume files)."""
    return sorted(p for p in Path(folder).glob("*.pt") if not p.name.endswith(".resume.pt"))


def stats_figures(
    stats: str | Path | Sequence[str | Path] | pd.DataFrame,
    out: str | Path,
    sites: Sequence[str] = (),
    stat: str = "mean",
    shift: pd.DataFrame | None = None,
) -> list[Path]:
    """Draw, for every (model, task) in ``stats``: the Fig. A3 figure of the site of each
    kind with the largest normalised whole~train W1 (:func:`tlc_probe.stat_plots.choose_site`)
    and of every site in ``sites`` that the model has, the depth profile and the heatmap.
    Files ``<model>-<task>-a3-<site>.{png,pdf}``, ``...-depth.*``, ``...-heatmap.*`` in
    ``out``. Returns the paths written."""
    from .shift import read_stats, shift_table
    from .stat_plots import choose_site, depth_profile, fig_a3, heatmap, save_figure

    df = stats if isinstance(stats, pd.DataFrame) else read_stats(stats)
    table = shift if shift is not None else shift_table(df, per_channel=False)
    paths: list[Path] = []
    for (model, task), sub in df.groupby(["model", "task"], sort=True):
        tab = table[(table["model"] == model) & (table["task"] == task)]
        chosen = []
        for kind in ("in", "se"):
            if (tab["kind"] == kind).any():
                chosen.append(choose_site(tab, kind, model=model))
        chosen += [s for s in sites if s in set(sub["site"]) and s not in chosen]
        tag = f"{model}-{task}"
        for site in chosen:
            fig = fig_a3(sub, site, stat=stat, shift=tab, model=model, task=task)
            paths += save_figure(fig, out, f"{tag}-a3-{site}")
        paths += save_figure(
            depth_profile(tab, stat=stat, model=model, task=task), out, f"{tag}-depth"
        )
        paths += save_figure(heatmap(tab, model, stat=stat, task=task), out, f"{tag}-heatmap")
    return paths


def bench_outputs(
    checkpoint: str | Path,
    out: str | Path,
    *,
    quick: bool = False,
    sizes: Sequence[tuple[int, int]] = ((720, 1280),),
    overlaps: Sequence[int] | None = None,
    repeats: int = 3,
    sweep: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Run :func:`tlc_probe.bench.bench` (and the window sweep) for ``checkpoint`` and write
    ``bench.csv``, ``bench.md``, ``sweep.csv``, ``sweep.{png,pdf}`` and
    ``seams.{png,pdf}`` to ``out``. ``quick``: one repeat, one test photo, sweep over
    1, 1.5, 2 and global. Returns {"table", "sweep", "markdown", "paths"}."""
    from .bench import bench, seam_crops_figure, sweep_figure, table_a1, window_sweep
    from .stat_plots import save_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_photos = 1 if quick else None
    table = bench(
        checkpoint,
        sizes=sizes,
        overlaps=overlaps,
        repeats=1 if quick else repeats,
        n_photos=n_photos,
        progress=progress,
    )
    table.to_csv(out / "bench.csv", index=False)
    md = table_a1(table)
    (out / "bench.md").write_text(md + "\n")
    paths = [out / "bench.csv", out / "bench.md"]
    sw = None
    if sweep:
        ratios = (1.0, 1.5, 2.0) if quick else None
        kw = {"ratios": ratios} if ratios else {}
        sw = window_sweep(checkpoint, n_photos=n_photos, progress=progress, **kw)
        sw.to_csv(out / "sweep.csv", index=False)
        paths += [out / "sweep.csv", *save_figure(sweep_figure(sw), out, "sweep")]
    paths += save_figure(seam_crops_figure(checkpoint, overlaps=overlaps), out, "seams")
    return {"table": table, "sweep": sw, "markdown": md, "paths": paths}


#: Settings of the main job: (default, --quick).
REPRODUCE_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "crops": 64,
        "positions": 16,
        "images": None,
        "bench_models": None,  # every deblurring checkpoint
        "bench_sizes": [(720, 1280)],
        "bench_repeats": 1,
        "sweep": ["hinet", "nafnet"],  # MPRNet's sweep alone would take ~1 min more
    },
    "quick": {
        "crops": 16,
        "positions": 6,
        "images": 1,
        "bench_models": ["nafnet"],
        "bench_sizes": [],
        "bench_repeats": 1,
        "sweep": [],
    },
}
#: Which shipped model shows each task in the qualitative panels (Fig. A4-A6 analogues).
QUALITATIVE = {"deblur": "mprnet", "derain": "hinet", "dehaze": "ffanet"}


def _rel(path: Path, base: Path) -> str:
    return str(path.relative_to(base)).replace("\\", "/")


def reproduce(
    out: str | Path = "results",
    *,
    quick: bool = False,
    checkpoints: Sequence[str | Path] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The main job on the embedded default, written to ``out``:

    1. ``stats/<checkpoint>/``: the four regimes of every shipped checkpoint (collect);
    2. ``shift/``: KL / JS / W1 tables and the per-model summary;
    3. ``figures/``: Fig. A3 (the most shifted IN and SE site of each model), depth
       profiles, heatmaps, qualitative panels (Fig. A4-A6 analogues);
    4. ``bench/<checkpoint>/``: Table A1 (test photos and 720 x 1280), window sweep and
       seam crops of the deblurring checkpoints;
    5. ``REPORT.md`` with the tables and figures, and ``summary.json``.

    ``quick`` uses one test photo, fewer crops and positions, and benchmarks only the
    NAFNet on that photo, without the 720 x 1280 timing size and the window sweep
    (:data:`REPRODUCE_SETTINGS`). Returns the summary dict (also written as ``summary.json``).
    """
    from .bench import table_a1
    from .plots import qualitative_figure
    from .probe.regimes import CollectConfig, collect_checkpoint
    from .shift import read_stats, shift_table, summary, write_shift
    from .stat_plots import save_figure

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = REPRODUCE_SETTINGS["quick" if quick else "default"]
    ckpts = [Path(c) for c in (checkpoints or shipped_checkpoints())]
    if not ckpts:
        raise ValueError(f"no checkpoints in {CHECKPOINTS}")
    timings: dict[str, float] = {}
    cfg = CollectConfig(n_crops=s["crops"], positions=s["positions"])
    metas = {}
    for ck in ckpts:
        t = time.perf_counter()
        r = collect_checkpoint(
            ck,
            out / "stats" / ck.stem,
            config=cfg,
            mode="overwrite",
            n_images=s["images"],
            progress=progress,
        )
        metas[ck.stem] = {"rows": sum(r.rows.values()), "nonfinite": dict(r.nonfinite)}
        timings[f"collect {ck.stem}"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = read_stats([out / "stats" / ck.stem for ck in ckpts])
    table = shift_table(stats)
    write_shift(table, out / "shift")
    summ = summary(table)
    pooled = table[table["channel"] == "all"]
    timings["shift"] = time.perf_counter() - t

    t = time.perf_counter()
    figs = stats_figures(stats, out / "figures", shift=pooled)
    by_task: dict[str, Path] = {}
    for ck in ckpts:
        name, task = ck.stem.split("-")[0], ck.stem.split("-")[-1]
        if QUALITATIVE.get(task) == name or task not in by_task:
            by_task[task] = ck
    for _task, ck in sorted(by_task.items()):
        figs += save_figure(qualitative_figure(str(ck)), out / "figures", f"qualitative-{ck.stem}")
    timings["figures"] = time.perf_counter() - t

    benches = {}
    deblur = [ck for ck in ckpts if ck.stem.endswith("deblur")]
    if s["bench_models"] is not None:
        deblur = [ck for ck in deblur if ck.stem.split("-")[0] in s["bench_models"]] or deblur[:1]
    for ck in deblur:
        t = time.perf_counter()
        benches[ck.stem] = bench_outputs(
            ck,
            out / "bench" / ck.stem,
            quick=quick,
            sizes=s["bench_sizes"],
            repeats=s["bench_repeats"],
            sweep=s["sweep"] is True or ck.stem.split("-")[0] in (s["sweep"] or ()),
            progress=progress,
        )
        timings[f"bench {ck.stem}"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    result = {
        "quick": quick,
        "settings": s,
        "checkpoints": [str(c) for c in ckpts],
        "collect": metas,
        "summary": summ.to_dict(orient="records"),
        "bench": {k: v["table"].to_dict(orient="records") for k, v in benches.items()},
        "seconds": timings,
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "REPORT.md").write_text(_report_md(out, result, summ, pooled, figs, benches, table_a1))
    return result


def _report_md(out, result, summ, pooled, figs, benches, table_a1) -> str:
    pngs = [p for p in figs if p.suffix == ".png"]

    def img(p: Path, alt: str) -> str:
        return f"![{alt}]({_rel(p, out)})"

    lines = [
        "# tlc-probe report",
        "",
        "Global-statistics drift between patch training and whole-image inference, and what",
        "test-time local conversion (TLC) does to it, for the checkpoints shipped in",
        "`data/checkpoints` on the bundled test photos"
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
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()) + ".",
        "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()) + ".",
        "",
    ]
    return "\n".join(lines)
