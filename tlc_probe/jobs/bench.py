"""Inference-scheme benchmark: the supplementary material's Table A1 for any checkpoint,
the TLC window sweep, and the seam crops; the files ``tlc-probe bench`` writes.

Schemes are those of :mod:`tlc_probe.schemes`; the default tile overlaps are the paper's
fractions of the tile (1/16 and 1/2: 4 and 32 px for a 64-trained model). Quality (PSNR,
SSIM, seam index: :mod:`tlc_probe.metrics.image`) on the held-out test photos; for the
whole-image and TLC outputs the seam index is computed on the lines of the tiles of the
smallest overlap, so every row of the table is comparable.

Timing: all schemes interleaved within each repeat (machine drift hits them equally) in
an order rotated from repeat to repeat (so position effects average out), median over
``repeats`` after a warm-up; ``time_ratio`` is against ``whole`` on the same images.
Peak memory (:func:`tlc_probe.jobs.timing.peak_memory_mb`) is taken in the first timed
run on the largest image (no extra pass).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..metrics.image import psnr, seam_index, ssim
from ..metrics.intervals import paired_difference
from ..schemes import default_names, default_overlaps, make_scheme, make_schemes
from ..store.atomic import atomic_write, write_text
from ..store.figures import save_figure
from ..tensors import to_device
from ..tiling import tile_pixel_ratio
from ..tlc.coverage import Coverage, watch_coverage
from ..tlc.plan import Plan
from ..viz import seam_crops_figure, sweep_figure
from .evaluate import held_out_scores
from .images import ImageSource
from .render import table_a1
from .subject import Subject, as_subject, load_for_test
from .timing import peak_memory_mb, timed

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
    "n_images",
    "dpsnr",
    "dpsnr_lo",
    "dpsnr_hi",
    "p_wilcoxon",
)
#: Columns of the per-image quality table (``per_image.csv``).
PER_IMAGE_COLUMNS = ("model", "test_set", "image", "scheme", "psnr", "ssim")


def timing_image(size: tuple[int, int], photo: torch.Tensor) -> torch.Tensor:
    """A (1, 3, H, W) timing input of ``size`` made by resizing ``photo`` (C, h, w)
    bilinearly (inference time does not depend on the content)."""
    return F.interpolate(photo[None], size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def score_output(
    out: torch.Tensor, target: torch.Tensor, train_size: int, overlap: int
) -> tuple[float, float, float]:
    """(PSNR dB, SSIM, seam index) of a network's output (1, 3, H, W) or (3, H, W),
    clamped to [0, 1], against ``target`` (3, H, W); the seam index on the lines of
    ``train_size`` tiles with ``overlap`` px (:func:`~tlc_probe.metrics.image.seam_index`).
    What :func:`bench` records for each scheme and test image."""
    o = (out[0] if out.dim() == 4 else out).clamp(0, 1).float().cpu()
    return psnr(o, target), ssim(o, target), seam_index(o, target, train_size, overlap)


def seam_overlap(train_size: int, overlaps: Sequence[int] | None = None) -> int:
    """The tile overlap whose lines the seam index of untiled outputs (whole, TLC) is
    taken on: the smallest of ``overlaps`` (default
    :func:`~tlc_probe.schemes.default_overlaps`), so every row of a table compares."""
    overlaps = list(overlaps) if overlaps is not None else default_overlaps(train_size)
    return min(overlaps) if overlaps else max(1, train_size // 16)


def bench(
    checkpoint: Subject | nn.Module | str | Path,
    *,
    sizes: Sequence[tuple[int, int]] = ((720, 1280),),
    overlaps: Sequence[int] | None = None,
    repeats: int = 3,
    n_photos: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    schemes: Sequence[str] | None = None,
    images: ImageSource | None = None,
    per_image: bool = False,
    plan: Plan | str | Path | None = None,
    scored: Mapping[tuple[str, str], tuple[float, float, float]] | None = None,
    first_outputs: dict[str, torch.Tensor] | None = None,
    **identity: Any,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Table A1 for ``checkpoint``: one row per scheme and image size.

    ``schemes``: names of :mod:`tlc_probe.schemes` (default
    :func:`~tlc_probe.schemes.default_names` with ``overlaps``); ``whole`` is run first
    in any case (the time
    ratios are to it) and a name given twice runs once.

    ``plan``: a window plan (:class:`~tlc_probe.tlc.plan.Plan` or its ``plan.json``, for
    this checkpoint: checked by sha256) adds the scheme ``tlc-tuned``.

    ``scored``: {(image id, scheme): (psnr, ssim, seam index)} of outputs already scored
    on these test images (by :func:`score_output` with :func:`seam_overlap`, e.g. from
    the passes of :func:`~tlc_probe.jobs.collect.collect`'s ``on_output``): the schemes
    it names are not run on the test images again (``ValueError`` when an image lacks
    one), and their test-image time is NaN.

    ``first_outputs``: a dict that receives each scheme's output (3, H, W) on the first
    test image, clamped to [0, 1] (for :func:`seam_outputs`, which then need not run
    them again).

    ``checkpoint``: a checkpoint, a :class:`~tlc_probe.jobs.subject.Subject` or an own
    module; ``identity`` (``model``, ``preset``, ``task``, ``train_size``, ``name``) as
    in :func:`~tlc_probe.jobs.subject.load_subject`. Image size ``test``: the test images
    of ``images`` (default: the bundled test photos degraded for the task with ``seed``;
    their own sizes; the first ``n_photos`` of them, default all, read one at a time):
    mean PSNR / SSIM / seam index against the targets, time = mean over images of the
    median per-image time. Each size in ``sizes`` (H, W): the first test image resized
    to it, time and memory only.

    Returns a DataFrame with :data:`CSV_COLUMNS` (with ``per_image``: that and the
    per-image table, :data:`PER_IMAGE_COLUMNS`, PSNR in dB); on the test-image rows of
    every scheme but ``whole``, ``dpsnr`` is the mean paired PSNR difference to
    ``whole`` over the ``n_images`` images, ``dpsnr_lo`` / ``dpsnr_hi`` its 95 %
    bootstrap interval resampling images and ``p_wilcoxon`` the Wilcoxon signed-rank
    p-value from 6 images on
    (:func:`~tlc_probe.metrics.intervals.paired_difference`); ``tile_pixel_ratio`` is the
    theoretical time ratio of a tiles scheme (tile pixels processed / image pixels);
    ``peak_mem_mb`` is measured once per scheme on the largest timing size (on the
    largest test image when ``sizes`` is empty; NaN elsewhere). A ``RuntimeWarning``
    says when TLC changed nothing on the test images (every window covers its map at
    their sizes), whatever it does at the timing sizes.
    """
    device = torch.device(device)
    subject, items = load_for_test(checkpoint, n_photos, seed, images=images, **identity)
    ts, name = subject.train_size, subject.name
    model = to_device(subject.model, device)
    overlaps = list(overlaps) if overlaps is not None else default_overlaps(ts)
    if plan is not None:
        plan = plan if isinstance(plan, Plan) else Plan.load(plan)
        plan.check_checkpoint(subject.meta.get("checkpoint_sha256"))
    if schemes is not None:
        tuned = ["tlc-tuned"] if plan is not None else []
        schemes = list(dict.fromkeys(["whole", *schemes, *tuned]))
    schemes = make_schemes(model, ts, schemes, overlaps=overlaps, plan=plan)
    first = items[0]["input"]
    # test images are read when their turn comes (a test set of any size fits in memory)
    cases: list[tuple[str, Any]] = [("test", i) for i in range(len(items))]
    cases += [(f"{h}x{w}", timing_image((h, w), first)) for h, w in sizes]
    pixels = [(c[1].shape[-2] * c[1].shape[-1]) if c[0] != "test" else 0 for c in cases]
    if not sizes:  # no timing size: memory on the largest test image (sizes read once)
        pixels = [
            items[i]["input"][0].numel() if c[0] == "test" else 0 for i, c in enumerate(cases)
        ]
    mem_case = max(range(len(cases)), key=lambda i: pixels[i])

    def load(case: tuple[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if case[0] == "test":
            item = items[case[1]]
            image_ids[case[1]] = str(item.get("id", case[1]))
            return item["input"][None], item["target"]
        return case[1], None

    image_ids: dict[int, str] = {}
    times: dict[tuple[int, str], list[float]] = {}
    quality: dict[tuple[int, str], tuple[float, float, float]] = {}
    memory: dict[tuple[str, str], float] = {}
    shapes: dict[int, tuple[int, int]] = {}
    seam_tile_overlap = seam_overlap(ts, overlaps)
    given = {name for _, name in scored} if scored else set()
    running = [s for s in schemes if s.name not in given or sizes]  # run on some image
    tlc_runs = [s for s in running if s.tlc_mode is not None]
    with torch.no_grad(), ExitStack() as stack:
        coverage = [stack.enter_context(watch_coverage(s.run)) for s in tlc_runs]
        warm = timing_image((ts * 2, ts * 3), first).to(device)
        for s in running:
            s.run(warm)
        for cov in coverage:  # the warm-up is not a measurement (the hooks keep the sets)
            for seen in cov.seen.values():
                seen.clear()
        on_test = [Coverage(cov.windows) for cov in coverage]
        steps = repeats * len(cases) * len(schemes)
        bar = tqdm(total=steps, desc=f"bench {name}", disable=not progress)
        for rep in range(repeats):
            for ci, case in enumerate(cases):
                size = case[0]
                x, y = load(case)
                x = x.to(device)
                shapes[ci] = (int(x.shape[-2]), int(x.shape[-1]))
                k = rep % len(schemes)  # rotated order: no scheme always runs first
                for s in schemes[k:] + schemes[:k]:
                    bar.set_postfix(size=size, scheme=s.name)
                    if case[0] == "test" and s.name in given:
                        image = image_ids[case[1]]
                        if (image, s.name) not in scored:
                            raise ValueError(f"scored has no {s.name} output of image {image}")
                        quality[(ci, s.name)] = tuple(scored[(image, s.name)])
                        bar.update(1)
                        continue
                    got: dict[str, object] = {}

                    def call(s=s, x=x, got=got):
                        got["out"], got["dt"] = timed(lambda: s.run(x), device)

                    if rep == 0 and ci == mem_case:
                        memory[(size, s.name)] = peak_memory_mb(call, device)
                    else:
                        call()
                    out, dt = got["out"], got["dt"]
                    times.setdefault((ci, s.name), []).append(dt)
                    if rep == 0 and y is not None:
                        ov = s.overlap if s.overlap is not None else seam_tile_overlap
                        o = out[0].clamp(0, 1).cpu()
                        quality[(ci, s.name)] = score_output(o, y, ts, ov)
                        if first_outputs is not None and ci == 0:
                            first_outputs[s.name] = o
                    bar.update(1)
                # what TLC did on the test images, apart from the (larger) timing sizes
                for cov, mine in zip(coverage, on_test, strict=True):
                    for site, seen in cov.seen.items():
                        if case[0] == "test":
                            mine.seen[site] |= seen
                        seen.clear()
        bar.close()
    for s, cov in zip(tlc_runs, on_test, strict=True):
        if cov.noop and s.name not in given:  # (given: not run on the test images)
            warnings.warn(
                cov.message(f"on the test images in scheme {s.name} of {name}"),
                RuntimeWarning,
                stacklevel=2,
            )
    rows = []
    sizes_seen = list(dict.fromkeys(c[0] for c in cases))
    for size in sizes_seen:
        idx = [i for i, c in enumerate(cases) if c[0] == size]
        med = {
            s.name: float(np.mean([np.median(times.get((i, s.name), math.nan)) for i in idx]))
            for s in schemes
        }
        for s in schemes:
            q = [quality[(i, s.name)] for i in idx if (i, s.name) in quality]
            h, w = shapes[idx[0]]
            rows.append(
                {
                    "model": name,
                    "image_size": size,
                    "scheme": s.name,
                    "overlap": s.overlap if s.overlap is not None else 0,
                    "tlc": "tuned" if s.name == "tlc-tuned" else (s.tlc_mode or "no"),
                    "psnr": float(np.mean([v[0] for v in q])) if q else math.nan,
                    "ssim": float(np.mean([v[1] for v in q])) if q else math.nan,
                    "time_s": med[s.name],
                    "time_ratio": med[s.name] / med["whole"],
                    "tile_pixel_ratio": tile_pixel_ratio(h, w, ts, s.overlap),
                    "peak_mem_mb": memory.get((size, s.name), math.nan),
                    "seam_index": float(np.nanmean([v[2] for v in q])) if q else math.nan,
                    **_paired_to_whole(quality, idx, s.name),
                }
            )
    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    if not per_image:
        return table
    test_set = images.label() if images is not None else "photos"
    each = [
        (name, test_set, image_ids[i], s.name, *quality[(i, s.name)][:2])
        for i, c in enumerate(cases)
        if c[0] == "test"
        for s in schemes
        if (i, s.name) in quality
    ]
    return table, pd.DataFrame(each, columns=list(PER_IMAGE_COLUMNS))


def _paired_to_whole(quality: dict, idx: list[int], scheme: str) -> dict[str, float]:
    """n_images and the paired PSNR difference of ``scheme`` to ``whole`` over the images
    ``idx`` that have quality (NaN for ``whole`` itself and timing sizes)."""
    have = [i for i in idx if (i, scheme) in quality and (i, "whole") in quality]
    out = {"n_images": len(have), "dpsnr": math.nan, "dpsnr_lo": math.nan}
    out |= {"dpsnr_hi": math.nan, "p_wilcoxon": math.nan}
    if have and scheme != "whole":
        d = paired_difference(
            [quality[(i, scheme)][0] for i in have], [quality[(i, "whole")][0] for i in have]
        )
        out |= {"dpsnr": d["diff"], "dpsnr_lo": d["lo"], "dpsnr_hi": d["hi"]}
        out["p_wilcoxon"] = d["p_wilcoxon"]
    return out


def window_sweep(
    checkpoint: Subject | nn.Module | str | Path,
    ratios: Sequence[float] = SWEEP_RATIOS,
    *,
    n_photos: int | None = None,
    seed: int = 0,
    progress: bool = True,
    images: ImageSource | None = None,
    **identity: Any,
) -> pd.DataFrame:
    """PSNR / SSIM of TLC on the test images (as in :func:`bench`) as base_size /
    train_size goes over ``ratios``, plus a ``global`` row (whole-image inference, the
    limit of an infinite window). Columns: model, ratio (float, inf for global),
    base_size, psnr, ssim, n (images)."""
    subject, items = load_for_test(checkpoint, n_photos, seed, images=images, **identity)
    ts, name, model = subject.train_size, subject.name, subject.model
    nets = [
        (float(r), round(r * ts), make_scheme("tlc", model, ts, base_size=round(r * ts)).run)
        for r in ratios
    ]
    nets.append((math.inf, None, model))
    rows = []
    for r, base, net in tqdm(nets, desc=f"window sweep {name}", disable=not progress):
        score = held_out_scores({"tlc": net}, items, with_ssim=True)["tlc"]
        rows.append({"model": name, "ratio": r, "base_size": base, **score, "n": len(items)})
    return pd.DataFrame(rows, columns=["model", "ratio", "base_size", "psnr", "ssim", "n"])


def seam_outputs(
    checkpoint: Subject | nn.Module | str | Path,
    overlaps: Sequence[int] | None = None,
    photo: int = 0,
    seed: int = 0,
    *,
    images: ImageSource | None = None,
    known: Mapping[str, torch.Tensor] | None = None,
    **identity: Any,
) -> dict[str, Any]:
    """What :func:`tlc_probe.viz.seam_crops_figure` draws for test photo ``photo``: the
    outputs of whole, tlc and each tiles scheme with the overlap whose tile edges to
    score (the smallest for untiled schemes), the target, the tile size and a title.
    ``known``: outputs (3, H, W) in [0, 1] of these schemes on that photo already made
    (:func:`bench`'s ``first_outputs``), not run again.
    Returns {"outputs": {name: ((3, H, W), overlap)}, "target", "tile", "title"}."""
    subject, items = load_for_test(checkpoint, photo + 1, seed, images=images, **identity)
    ts, item, model = subject.train_size, items[photo], subject.model
    overlaps = list(overlaps) if overlaps is not None else default_overlaps(ts)
    names = [n for n in default_names(model, ts, overlaps) if n not in ("tlc-fast", "tlc-grid")]
    o0 = min(overlaps) if overlaps else 0
    outputs = {}
    known = known or {}
    with torch.no_grad():
        for s in make_schemes(model, ts, names):
            out = known.get(s.name)
            if out is None:
                out = s.run(item["input"][None])[0].clamp(0, 1)
            outputs[s.name] = (out, s.overlap if s.overlap is not None else o0)
    title = f"{subject.name}: {item['id']}, tile {ts}"
    return {"outputs": outputs, "target": item["target"], "tile": ts, "title": title}


def bench_outputs(
    checkpoint: Subject | nn.Module | str | Path,
    out: str | Path,
    *,
    quick: bool = False,
    sizes: Sequence[tuple[int, int]] = ((720, 1280),),
    overlaps: Sequence[int] | None = None,
    repeats: int = 3,
    sweep: bool = True,
    progress: bool = True,
    schemes: Sequence[str] | None = None,
    images: ImageSource | None = None,
    n_photos: int | None = None,
    plan: Plan | str | Path | None = None,
    seams: bool = True,
    scored: Mapping[tuple[str, str], tuple[float, float, float]] | None = None,
    **identity: Any,
) -> dict[str, Any]:
    """Run :func:`bench` (and the window sweep) for ``checkpoint`` and write
    ``bench.csv``, ``per_image.csv``, ``bench.md``, ``sweep.csv``, ``sweep.{png,pdf}``
    and (with ``seams``) ``seams.{png,pdf}`` to ``out``. ``quick``: one repeat, one test
    image, sweep over 1, 1.5, 2 and global. ``images``, ``n_photos`` (test images used,
    default all) and ``identity`` (``model``, ``preset``, ``task``, ``train_size``,
    ``name``) as in :func:`bench`; ``schemes``, ``plan`` and ``scored`` as there.
    Returns {"subject", "table", "per_image", "sweep", "markdown", "paths"}."""
    out = Path(out)
    subject = as_subject(checkpoint, **identity)
    n_photos = 1 if quick else n_photos
    first: dict[str, torch.Tensor] = {}
    table, each = bench(
        subject,
        sizes=sizes,
        overlaps=overlaps,
        repeats=1 if quick else repeats,
        n_photos=n_photos,
        progress=progress,
        schemes=schemes,
        images=images,
        per_image=True,
        plan=plan,
        scored=scored,
        first_outputs=first,
    )
    md = table_a1(table)
    paths = [
        atomic_write(out / "bench.csv", lambda p: table.to_csv(p, index=False)),
        atomic_write(out / "per_image.csv", lambda p: each.to_csv(p, index=False)),
        write_text(out / "bench.md", md + "\n"),
    ]
    sw = None
    if sweep:
        ratios = (1.0, 1.5, 2.0) if quick else SWEEP_RATIOS
        sw = window_sweep(subject, ratios, n_photos=n_photos, progress=progress, images=images)
        paths.append(atomic_write(out / "sweep.csv", lambda p: sw.to_csv(p, index=False)))
        paths += save_figure(sweep_figure(sw), out, "sweep")
    if seams:
        crops = seam_outputs(subject, overlaps=overlaps, images=images, known=first)
        paths += save_figure(seam_crops_figure(**crops), out, "seams")
    return {
        "subject": subject,
        "table": table,
        "per_image": each,
        "sweep": sw,
        "markdown": md,
        "paths": paths,
    }
