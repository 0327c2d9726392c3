"""The main job, on the embedded default (shipped checkpoints, bundled photos) or on a
user's model and data: statistics -> reliance -> shift -> figures -> Table A1 ->
qualitative panels -> ``REPORT.md``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..data.datasets import SYNTHETIC_SIZE
from ..metrics.shift import COMPARISONS
from ..probe import Probe
from ..schemes import default_overlaps
from ..sizes import as_int
from ..store.atomic import atomic_write, write_text
from ..store.checkpoint import read_checkpoint
from ..store.figures import save_figure
from ..store.read import SiteIndex
from ..store.shipped import shipped_checkpoints
from ..tensors import to_model
from ..tlc.plan import json_ready
from .bench import bench_outputs, score_output, seam_overlap
from .collect import CollectConfig, collect_checkpoint
from .figures import qualitative, stats_figures
from .images import ImageSource
from .reliance import reliance_checkpoint
from .render import report_md
from .shift import shift_results, store_shift_table, with_content_floors, write_shift_results
from .subject import Subject, as_subject, load_subject
from .tune import tune_outputs

#: Settings of the main job: (default, quick).
REPRODUCE_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {
        "crops": 64,
        "positions": 16,
        "images": None,
        "bench_models": None,  # every deblurring checkpoint
        # timing sizes: the paper's 720 x 1280 for the Table A1 model (MPRNet, as in the
        # paper), 360 x 640 for the other benchmarked checkpoints (the same ratio of
        # image to training crop as 720 x 1280 to 256; a quarter of the time)
        "bench_sizes": [(720, 1280)],
        "bench_sizes_other": [(360, 640)],
        "bench_repeats": 1,
        "sweep": ["hinet", "nafnet"],  # MPRNet's sweep alone would take ~1 min more
        # per-site reliance runs the network once per site and photo (MPRNet: 37 sites);
        # on one photo it takes ~2 min for the five checkpoints, on all three ~6 min
        "reliance_photos": 1,
        "reliance_reference": 8,
        # per-site windows are tuned for the benchmarked checkpoints on this many training
        # images (8 passes each), and the chosen plan is benchmarked as tlc-tuned
        "tune_images": 2,
        # the embedded default also runs the generated test set (statistics, shift and,
        # for the benchmarked checkpoints, whole / tlc / tiles PSNR on its 12 scenes)
        "synthetic": True,
    },
    "quick": {
        "crops": 16,
        "positions": 6,
        "images": 1,
        "bench_models": ["nafnet"],
        "bench_sizes": [],
        "bench_sizes_other": [],
        "bench_repeats": 1,
        "sweep": [],
        "reliance_photos": 1,
        "reliance_reference": 8,
        "tune_images": 1,
        "synthetic": False,
    },
}
#: What the main job writes under its output folder (``overwrite`` removes these only).
OUTPUTS = (
    "stats",
    "reliance",
    "shift",
    "figures",
    "tune",
    "bench",
    "synthetic",
    "REPORT.md",
    "summary.json",
)


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


def _key(subject: Subject, user: bool) -> str:
    """The folder name of a subject's outputs: a user's run name; a shipped checkpoint's
    file stem (two shipped checkpoints of one architecture differ by task)."""
    ck = subject.meta.get("checkpoint")
    return Path(ck).stem if ck and not user else subject.name


def estimate_seconds(
    subjects: Sequence[Subject], images: ImageSource, settings: dict[str, Any]
) -> tuple[float, str]:
    """A rough duration of the main job (seconds) and how it was estimated: one timed
    whole-image pass of each subject on its first test image, times the passes the job
    makes (collect about 5 per image plus the crops, reliance sites + 2 per scored image
    plus the reference images, bench and sweep about 10 + 7 per image and repeat, 10 per
    timing size scaled by its pixels, and the generated test set's 12 scenes about 5
    times, 9 when benchmarked). An estimate, not a promise."""
    total, parts = 0.0, []
    for s in subjects:
        items = images.test_items(s.task, 1)
        if not len(items):
            raise ValueError(f"no test images for {s.name} in {images.describe(s.task)}")
        x = items[0]["input"][None]
        with torch.no_grad():
            s.model(to_model(s.model, x))  # warm-up
            t = time.perf_counter()
            s.model(to_model(s.model, x))
            one = time.perf_counter() - t
        n_img = len(images.test_items(s.task, settings["images"]))
        n_sites = len(Probe(s.model).sites)
        crops = settings["crops"] * (s.train_size**2) / max(1, x.shape[-2] * x.shape[-1])
        scored = min(n_img, settings["reliance_photos"] or n_img)
        reference = len(images.test_items(s.task, _reference_images(settings, images)))
        passes = n_img * 5 + crops + (n_sites + 2) * scored + reference
        if _runs_synthetic(images, settings):
            scenes = 12 * SYNTHETIC_SIZE[0] * SYNTHETIC_SIZE[1] / (x.shape[-2] * x.shape[-1])
            passes += scenes * (5 + (4 if _benched(s, settings) else 0))  # collect, bench
        if _benched(s, settings):
            passes += n_img * (10 * settings["bench_repeats"] + 7)
            passes += 9 * settings["tune_images"] + n_img  # tune, and tlc-tuned in bench
            pixels = x.shape[-2] * x.shape[-1]  # the timing sizes: ~10 passes each, scaled
            passes += sum(
                10 * settings["bench_repeats"] * h * w / pixels
                for h, w in _timing_sizes(s, settings)
            )
        total += one * passes
        parts.append(f"{s.name}: {one:.2f} s per whole-image pass x ~{passes:.0f} passes")
    return total, "; ".join(parts)


def _reference_images(settings: dict[str, Any], images: ImageSource) -> int | None:
    """How many test images the reliance constants are averaged over: all the bundled
    photos; of a folder, the images the job uses (``settings["images"]``), at least
    ``settings["reliance_reference"]`` (a constant from the one scored image alone would
    be that image's own statistic, and freezing would change nothing)."""
    if images.bundled or settings["images"] is None:
        return None
    return max(settings["images"], settings["reliance_reference"])


#: The architecture whose Table A1 is timed at the paper's 720 x 1280 (the paper's own).
TABLE_A1_MODEL = "mprnet"


def _timing_sizes(subject: Subject, settings: dict[str, Any]) -> list[tuple[int, int]]:
    """Table A1's timing sizes for ``subject``: ``bench_sizes`` for the Table A1 model
    and a user's model, ``bench_sizes_other`` for the other shipped checkpoints."""
    if settings.get("user") or subject.meta.get("architecture") == TABLE_A1_MODEL:
        return list(settings["bench_sizes"])
    return list(settings.get("bench_sizes_other", settings["bench_sizes"]))


def _benched(subject: Subject, settings: dict[str, Any]) -> bool:
    """Table A1 runs on every deblurring checkpoint of the embedded default (all of
    ``settings["bench_models"]``' architectures), and on a user's model of any task."""
    if settings.get("user"):
        return True
    if subject.task != "deblur":
        return False
    models = settings["bench_models"]
    return models is None or subject.meta.get("architecture") in models


def reproduce(
    model: Subject | nn.Module | str | Path | None = None,
    *,
    out: str | Path = "results",
    quick: bool = False,
    checkpoints: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    layout: str = "pairs",
    train_data: str | Path | None = None,
    images: ImageSource | None = None,
    n_images: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    **identity: Any,
) -> dict[str, Any]:
    """The main job, written to ``out``, on the embedded default or on your model and data.

    1. ``stats/<key>/``: the five regimes of every subject (collect; ``<key>``: the
       checkpoint file's stem, or the run name of a model object);
    2. ``reliance/reliance.csv``: each site's statistic frozen, one at a time and all;
    3. ``shift/``: KL / JS / W1 tables, the per-site decomposition into content, context
       and aggregation (reliance joined) and the per-model summary;
    4. ``figures/``: Fig. A3 (the most shifted site of each kind and model), depth
       profiles, heatmaps, decomposition bars, qualitative panels (Fig. A4-A6 analogues);
    5. ``bench/<key>/``: Table A1 (test images, and timing at 720 x 1280 for MPRNet and
       your model, 360 x 640 for the other checkpoints), window sweep and seam crops —
       of the deblurring checkpoints of the embedded default, of your model whatever its
       task (``tune/<key>/``: their per-site windows, benchmarked as ``tlc-tuned``);
    6. ``synthetic/`` (embedded default, not ``quick``): the generated test set — stats,
       shift with the content link's sampling floor, and whole / tlc / tiles PSNR of the
       benchmarked checkpoints (:func:`_synthetic_pass`);
    7. ``REPORT.md`` with the tables and figures, and ``summary.json``.

    Args:
        model: your network: a checkpoint file (tlc-probe, published or spandrel; see
            :func:`~tlc_probe.jobs.subject.load_subject`), a
            :class:`~tlc_probe.jobs.subject.Subject` or an ``nn.Module``, described by
            ``identity``: ``task``, ``train_size``, ``name`` and, for a checkpoint without
            tlc-probe metadata, ``arch`` (zoo architecture, with ``preset``; default:
            spandrel detects it). None: the embedded default, ``checkpoints`` (default
            :func:`tlc_probe.store.shipped_checkpoints`).
        out: output folder; one that holds a main job's outputs is refused unless
            ``overwrite``, which deletes them first (:func:`prepare_out`).
        quick: one test image, fewer crops and positions, Table A1 without the
            720 x 1280 timing size and the window sweep (:data:`REPRODUCE_SETTINGS`).
        data: your test images, a paired folder (see
            :class:`~tlc_probe.jobs.images.ImageSource`); default: the bundled photos.
        layout: its layout, 'gopro' | 'sots' | 'pairs'.
        train_data: a folder of training images for the train regime (same layout).
        images: the test images as an :class:`~tlc_probe.jobs.images.ImageSource`,
            instead of ``data`` / ``layout`` / ``train_data``.
        n_images: use only the first N test images (collect, Table A1, the sweep;
            default: all, or one with ``quick``).
        progress: bars, and the time estimate printed before the work starts.

    Returns:
        The summary dict (also written as ``summary.json``).

    Example::

        import tlc_probe
        tlc_probe.reproduce(my_net, out="results/mine", name="unet", task="deblur",
                            train_size=128, data="GoPro", layout="gopro")
    """
    t0 = time.perf_counter()
    out = Path(out)
    s = dict(REPRODUCE_SETTINGS["quick" if quick else "default"])
    if n_images is not None:
        s["images"] = as_int(n_images, "n_images", minimum=1)
    if images is None:
        images = ImageSource(data, layout, train_data)
    elif data is not None or train_data is not None:
        raise ValueError("give images= or data= / train_data=, not both")
    if model is not None:
        if checkpoints:
            raise ValueError("give model= (your network) or checkpoints=, not both")
        arch = identity.pop("arch", None)
        subjects = [as_subject(model, model=arch, **identity)]
        s["user"] = True
        s["sweep"] = None if not quick else []  # None: every benchmarked model
    else:
        if identity:
            raise ValueError(f"{sorted(identity)} describe model=, which was not given")
        ckpts = [Path(c) for c in checkpoints] if checkpoints else shipped_checkpoints()
        subjects = [_shipped(ck) for ck in ckpts]
    keys = [_key(sub, bool(s.get("user"))) for sub in subjects]
    if not images.bundled and len({sub.task for sub in subjects}) > 1:
        raise ValueError(
            f"one test folder for checkpoints of tasks {sorted({x.task for x in subjects})}: "
            "give the checkpoints of its task only (checkpoints=), or your model (model=)"
        )
    if len(set(keys)) < len(keys) or len({(x.name, x.task) for x in subjects}) < len(keys):
        raise ValueError(f"two subjects share a name: {keys}; give them distinct names")
    prepare_out(out, overwrite)
    if progress:
        secs, how = estimate_seconds(subjects, images, s)
        when = f"{secs / 60:.0f} min" if secs >= 90 else f"{max(secs, 1):.0f} s"
        print(f"main job: about {when} of model passes on this machine ({how})", flush=True)
    timings: dict[str, float] = {}
    cfg = CollectConfig(n_crops=s["crops"], positions=s["positions"], seed=images.seed)
    metas = {}
    for sub, key in zip(subjects, keys, strict=True):
        t = time.perf_counter()
        r = collect_checkpoint(
            sub,
            out / "stats" / key,
            images=images,
            config=cfg,
            mode="overwrite",
            n_images=s["images"],
            progress=progress,
        )
        metas[key] = {
            "rows": sum(r.rows.values()),
            "nonfinite": dict(r.nonfinite),
            "tlc_noop": r.tlc_noop,
        }
        timings[f"collect {key}"] = time.perf_counter() - t

    t = time.perf_counter()
    rel = pd.concat(
        [
            reliance_checkpoint(
                sub,
                s["reliance_photos"],
                images=images,
                n_reference=_reference_images(s, images),
                progress=progress,
            )
            for sub in subjects
        ],
        ignore_index=True,
    )
    atomic_write(out / "reliance" / "reliance.csv", lambda p: rel.to_csv(p, index=False))
    timings["reliance"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = SiteIndex([out / "stats" / key for key in keys])  # read one site at a time
    table = store_shift_table(stats, COMPARISONS)
    results = shift_results(table, rel)
    write_shift_results(results, out / "shift")
    summ, parts = results["summary"], results["decomposition"]
    pooled = table[table["channel"] == "all"]
    timings["shift"] = time.perf_counter() - t

    t = time.perf_counter()
    figs = stats_figures(stats, out / "figures", shift=pooled, reliance=rel)
    by_task: dict[str, int] = {}
    for i, sub in enumerate(subjects):
        if QUALITATIVE.get(sub.task) == sub.meta.get("architecture") or sub.task not in by_task:
            by_task[sub.task] = i
    for _task, i in sorted(by_task.items()):
        fig = qualitative(subjects[i], images=images)
        figs += save_figure(fig, out / "figures", f"qualitative-{keys[i]}")
    timings["figures"] = time.perf_counter() - t

    benches = {}
    chosen = [i for i, sub in enumerate(subjects) if _benched(sub, s)]
    if not chosen and s["bench_models"] is not None:  # quick: the first deblurring model
        chosen = [i for i, sub in enumerate(subjects) if sub.task == "deblur"][:1]
    tunes = {}
    for i in chosen:
        sub, key = subjects[i], keys[i]
        t = time.perf_counter()
        if images.train_set(sub.task, sub.meta.get("train_config")) is not None:
            tunes[key] = tune_outputs(
                sub, out / "tune" / key, images=images, n_images=s["tune_images"], progress=progress
            )
            timings[f"tune {key}"] = time.perf_counter() - t
        t = time.perf_counter()
        benches[key] = bench_outputs(
            sub,
            out / "bench" / key,
            quick=quick,
            sizes=_timing_sizes(sub, s),
            repeats=s["bench_repeats"],
            sweep=s["sweep"] is None or sub.meta.get("architecture") in s["sweep"],
            progress=progress,
            images=images,
            n_photos=s["images"],
            plan=tunes[key]["chosen"] if key in tunes else None,  # before validation
        )
        timings[f"bench {key}"] = time.perf_counter() - t
    second = None
    if _runs_synthetic(images, s):
        second = _synthetic_pass(subjects, keys, chosen, out / "synthetic", s, rel, images.seed)
        timings.update(second["seconds"])
    timings["total"] = time.perf_counter() - t0

    result = {
        "quick": quick,
        "settings": {k: v for k, v in s.items() if k != "user"},
        "data": images.describe(_one_task(subjects)),
        "test_set": images.label(),
        "user_model": bool(s.get("user")),
        "checkpoints": [sub.meta.get("checkpoint", f"<module {sub.name}>") for sub in subjects],
        "models": {key: sub.name for key, sub in zip(keys, subjects, strict=True)},
        "collect": metas,
        "summary": summ.to_dict(orient="records"),
        "bench": {k: v["table"].to_dict(orient="records") for k, v in benches.items()},
        "tune": {k: v["plan"].validation for k, v in tunes.items()},
        "synthetic": None
        if second is None
        else {
            "data": second["data"],
            "summary": second["summary"].to_dict(orient="records"),
            "bench": {
                k: v["table"].to_dict(orient="records") for k, v in second["benches"].items()
            },
        },
        "seconds": timings,
    }
    strict = json.dumps(json_ready(result), indent=2, default=str, allow_nan=False)
    write_text(out / "summary.json", strict + "\n")  # NaN as null: strict JSON readers
    report = report_md(out, result, summ, pooled, figs, benches, parts, rel, tunes, second)
    write_text(out / "REPORT.md", report)
    return result


def _synthetic_pass(
    subjects: Sequence[Subject],
    keys: Sequence[str],
    benched: Sequence[int],
    out: Path,
    settings: dict[str, Any],
    reliance: pd.DataFrame,
    seed: int,
) -> dict[str, Any]:
    """The generated test set (``synthetic``, :func:`~tlc_probe.data.synthetic_pairs`) for
    every subject: statistics (``out/stats/<key>``), the shift tables with the
    decomposition (``out/shift``; the reliance measured on the photos joined) and the
    content link's sampling floor of every site
    (:func:`~tlc_probe.jobs.shift.with_content_floors`) and, for the ``benched``
    subjects, whole / tlc / tiles PSNR per image with paired intervals
    (:func:`~tlc_probe.jobs.bench.bench_outputs` into ``out/bench/<key>``: no timing
    sizes, sweep or seams; whole and tlc scored from the outputs of collect's passes,
    only the tiles run again). Returns {"data", "summary", "decomposition", "benches": {key:
    bench_outputs' dict}, "seconds"}."""
    syn = ImageSource.of("synthetic", seed=seed)
    cfg = CollectConfig(n_crops=settings["crops"], positions=settings["positions"], seed=seed)
    seconds: dict[str, float] = {}
    scored: dict[int, dict[tuple[str, str], tuple[float, float, float]]] = {}
    for i, (sub, key) in enumerate(zip(subjects, keys, strict=True)):
        t = time.perf_counter()
        score = None
        if i in benched:  # whole and tlc are scored from collect's own passes
            overlap = seam_overlap(sub.train_size)
            mine = scored.setdefault(i, {})

            def score(regime, item, out, mine=mine, ts=sub.train_size, overlap=overlap):
                mine[(str(item["id"]), regime)] = score_output(out, item["target"], ts, overlap)

        collect_checkpoint(
            sub,
            out / "stats" / key,
            images=syn,
            config=cfg,
            mode="overwrite",
            progress=False,
            on_output=score,
        )
        seconds[f"synthetic collect {key}"] = time.perf_counter() - t
    t = time.perf_counter()
    index = SiteIndex([out / "stats" / key for key in keys])
    results = with_content_floors(
        shift_results(store_shift_table(index, COMPARISONS), reliance), index
    )
    write_shift_results(results, out / "shift")
    seconds["synthetic shift"] = time.perf_counter() - t
    benches = {}
    for i in benched:
        sub, key = subjects[i], keys[i]
        t = time.perf_counter()
        tiles = f"tiles-{default_overlaps(sub.train_size)[-1]}"
        benches[key] = bench_outputs(
            sub,
            out / "bench" / key,
            sizes=(),
            repeats=1,
            sweep=False,
            seams=False,
            progress=False,
            schemes=["whole", "tlc", tiles],
            images=syn,
            scored=scored[i],
        )
        seconds[f"synthetic bench {key}"] = time.perf_counter() - t
    return {
        "data": syn.describe(_one_task(subjects)),
        "summary": results["summary"],
        "decomposition": results["decomposition"],
        "benches": benches,
        "seconds": seconds,
    }


def _runs_synthetic(images: ImageSource, settings: dict[str, Any]) -> bool:
    """Whether the main job also runs the generated test set: on the embedded default
    (bundled photos, shipped checkpoints) when ``settings["synthetic"]``."""
    return bool(
        settings.get("synthetic")
        and images.bundled
        and not images.synthetic
        and not settings.get("user")
    )


def _one_task(subjects: Sequence[Subject]) -> str | None:
    """The task of ``subjects`` when they share one, else None."""
    tasks = {sub.task for sub in subjects}
    return tasks.pop() if len(tasks) == 1 else None


def _shipped(checkpoint: Path) -> Subject:
    """A checkpoint of the embedded default: it must carry tlc-probe metadata."""
    _, meta = read_checkpoint(checkpoint)
    if "name" not in meta or "task" not in meta:
        raise ValueError(
            f"{checkpoint} is no tlc-probe checkpoint (its metadata has no name/task): run "
            "the main job on it as your model (model=, with task= and train_size=)"
        )
    return load_subject(checkpoint)
