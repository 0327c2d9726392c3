"""The main job on the embedded default: shipped checkpoints -> statistics -> shift ->
figures -> Table A1 -> qualitative panels -> ``REPORT.md``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..metrics.shift import COMPARISONS
from ..store.atomic import atomic_write, write_text
from ..store.checkpoint import read_checkpoint
from ..store.figures import save_figure
from ..store.read import SiteIndex
from ..store.shipped import shipped_checkpoints
from .bench import bench_outputs
from .collect import CollectConfig, collect_checkpoint
from .figures import qualitative, stats_figures
from .reliance import reliance_checkpoint
from .render import report_md
from .shift import shift_results, store_shift_table, write_shift_results

#: Settings of the main job: (default, quick).
REPRODUCE_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "crops": 64,
        "positions": 16,
        "images": None,
        "bench_models": None,  # every deblurring checkpoint
        "bench_sizes": [(720, 1280)],
        "bench_repeats": 1,
        "sweep": ["hinet", "nafnet"],  # MPRNet's sweep alone would take ~1 min more
        # per-site reliance runs the network once per site and photo (MPRNet: 37 sites);
        # on one photo it takes ~2 min for the five checkpoints, on all three ~6 min
        "reliance_photos": 1,
    },
    "quick": {
        "crops": 16,
        "positions": 6,
        "images": 1,
        "bench_models": ["nafnet"],
        "bench_sizes": [],
        "bench_repeats": 1,
        "sweep": [],
        "reliance_photos": 1,
    },
}
#: What the main job writes under its output folder (``overwrite`` removes these only).
OUTPUTS = ("stats", "reliance", "shift", "figures", "bench", "REPORT.md", "summary.json")


def prepare_out(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready for a fresh main job. A folder holding an earlier main job's
    outputs (recognised by its REPORT.md, summary.json or a ``stats/*/_run.json``) is
    refused (``FileExistsError``) unless ``overwrite``, which deletes those outputs (the
    entries of :data:`OUTPUTS`; other files stay), so that REPORT.md embeds only what
    the new run made. A folder with entries of those names that no main job wrote is
    refused either way (nothing of the user's is deleted); ``NotADirectoryError`` when
    ``out`` is a file."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out {out} is a file, not a folder")
    old = [out / name for name in OUTPUTS if (out / name).exists()]
    ours = any((out / m).is_file() for m in ("REPORT.md", "summary.json")) or any(
        out.glob("stats/*/_run.json")
    )
    if old and not ours:
        raise FileExistsError(
            f"{out} holds {', '.join(p.name for p in old)} that no main job wrote; "
            "choose another out"
        )
    if old and not overwrite:
        raise FileExistsError(
            f"{out} already holds the outputs of a main job ({', '.join(p.name for p in old)}); "
            "pass overwrite=True to replace them"
        )
    for p in old:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)


#: Which architecture shows each task in the qualitative panels (Fig. A4-A6 analogues).
QUALITATIVE = {"deblur": "mprnet", "derain": "spdnet", "dehaze": "ffanet"}


def _describe(checkpoints: Sequence[Path]) -> dict[Path, dict[str, str]]:
    """Architecture name and task of each checkpoint, from its metadata."""
    out = {}
    for ck in checkpoints:
        _, meta = read_checkpoint(ck)
        if "name" not in meta or "task" not in meta:
            raise ValueError(f"{ck} is no tlc-probe checkpoint (its metadata has no name/task)")
        out[ck] = {"name": meta["name"], "task": meta["task"]}
    return out


def reproduce(
    out: str | Path = "results",
    *,
    quick: bool = False,
    checkpoints: Sequence[str | Path] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The main job on the embedded default, written to ``out``:

    1. ``stats/<checkpoint>/``: the five regimes of every checkpoint (collect);
    2. ``reliance/reliance.csv``: each site's statistic frozen, one at a time and all;
    3. ``shift/``: KL / JS / W1 tables, the per-site decomposition into content, context
       and aggregation (reliance joined) and the per-model summary;
    4. ``figures/``: Fig. A3 (the most shifted IN and SE site of each model), depth
       profiles, heatmaps, decomposition bars, qualitative panels (Fig. A4-A6 analogues);
    5. ``bench/<checkpoint>/``: Table A1 (test photos and 720 x 1280), window sweep and
       seam crops of the deblurring checkpoints;
    6. ``REPORT.md`` with the tables and figures, and ``summary.json``.

    ``checkpoints`` default to :func:`tlc_probe.store.shipped_checkpoints`; each one's
    architecture and task come from its metadata. ``quick`` uses one test photo, fewer
    crops and positions, and benchmarks only the NAFNet on that photo, without the
    720 x 1280 timing size and the window sweep (:data:`REPRODUCE_SETTINGS`). A folder
    that already holds a main job's outputs is refused unless ``overwrite``, which
    deletes them first (:func:`prepare_out`). Returns the summary dict (also written as
    ``summary.json``).
    """
    t0 = time.perf_counter()
    out = Path(out)
    s = REPRODUCE_SETTINGS["quick" if quick else "default"]
    ckpts = [Path(c) for c in checkpoints] if checkpoints else shipped_checkpoints()
    info = _describe(ckpts)
    prepare_out(out, overwrite)
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
    rel = pd.concat(
        [reliance_checkpoint(ck, s["reliance_photos"]) for ck in ckpts], ignore_index=True
    )
    atomic_write(out / "reliance" / "reliance.csv", lambda p: rel.to_csv(p, index=False))
    timings["reliance"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = SiteIndex([out / "stats" / ck.stem for ck in ckpts])  # read one site at a time
    table = store_shift_table(stats, COMPARISONS)
    results = shift_results(table, rel)
    write_shift_results(results, out / "shift")
    summ, parts = results["summary"], results["decomposition"]
    pooled = table[table["channel"] == "all"]
    timings["shift"] = time.perf_counter() - t

    t = time.perf_counter()
    figs = stats_figures(stats, out / "figures", shift=pooled, reliance=rel)
    by_task: dict[str, Path] = {}
    for ck in ckpts:
        name, task = info[ck]["name"], info[ck]["task"]
        if QUALITATIVE.get(task) == name or task not in by_task:
            by_task[task] = ck
    for _task, ck in sorted(by_task.items()):
        figs += save_figure(qualitative(ck), out / "figures", f"qualitative-{ck.stem}")
    timings["figures"] = time.perf_counter() - t

    benches = {}
    deblur = [ck for ck in ckpts if info[ck]["task"] == "deblur"]
    if s["bench_models"] is not None:
        deblur = [ck for ck in deblur if info[ck]["name"] in s["bench_models"]] or deblur[:1]
    for ck in deblur:
        t = time.perf_counter()
        benches[ck.stem] = bench_outputs(
            ck,
            out / "bench" / ck.stem,
            quick=quick,
            sizes=s["bench_sizes"],
            repeats=s["bench_repeats"],
            sweep=info[ck]["name"] in s["sweep"],
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
    write_text(out / "summary.json", json.dumps(result, indent=2, default=str) + "\n")
    write_text(out / "REPORT.md", report_md(out, result, summ, pooled, figs, benches, parts, rel))
    return result
