"""The collect job: the four regimes of the paper's Fig. A3 argument and the window regime
of the decomposition, run into a Parquet statistics directory.

* ``train`` (green): the global model on random ``train_size`` crops of the degraded
  *training* images, with the training flips / rotations, drawn afresh from ``seed``.
* ``whole`` (blue): the global model on the whole degraded *test* images.
* ``tlc`` (red): ``convert(model, train_size)`` on the same whole test images.
* ``tiles``: the global model on overlapping ``train_size`` tiles of the test images
  (the statistics overlapping-patch inference feeds its global layers).
* ``window``: the global model on the whole test images, each site's statistics taken
  over windows of its training-time feature extent placed where the tiles lie
  (:mod:`tlc_probe.probe.windows`; a measurement, the output is unchanged). Between
  ``tiles`` and ``window`` only the features change (context); between ``window`` and
  ``whole`` only the extent of the mean (aggregation, what TLC acts on).

Work is cut into chunks (``crop_batch`` crops, or one test image for the image
regimes), each written as one part file the moment it is complete; no statistics
accumulate across chunks, so peak memory does not grow with the number of test images
(the train regime keeps the decoded training images it has cropped from, at most the
training set), and a resumed run skips the chunks whose files exist.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .._version import __version__
from ..data.datasets import check_images, draw_crop, manifest
from ..probe import Probe, training_windows
from ..sites import SITE_KINDS, example_input
from ..sizes import as_int
from ..store.atomic import check_writable
from ..store.parts import clear as clear_store
from ..store.parts import (
    clear_tmp,
    has_data,
    part_is_whole,
    part_path,
    read_run_json,
    write_part,
    write_run_json,
)
from ..store.read import INCIDENTAL
from ..tensors import model_device_dtype, pixel_batches, to_device, to_model
from ..tiling import check_tiling, image_tiles
from ..tlc import convert
from ..tlc.coverage import watch_coverage
from .distributed import Shard
from .images import ImageSource
from .subject import Subject, as_subject

REGIMES: tuple[str, ...] = ("train", "whole", "tlc", "tiles", "window")
MODES = ("refuse", "resume", "overwrite")


@dataclass
class CollectConfig:
    """How to collect. ``positions``: grid positions per axis for TLC local means;
    ``n_crops`` training crops in chunks (part files) of ``crop_batch``; tiles of
    train_size with ``tile_overlap`` pixels (crops and tiles run in batches of
    :func:`~tlc_probe.tensors.pixel_batches`); ``base_size`` as in
    :func:`tlc_probe.convert`, ``fast_imp`` for its ``mode="fast"``
    as in :func:`tlc_probe.convert`; ``keep_nonfinite`` writes NaN/Inf rows instead of
    dropping (and counting) them; ``writer`` names this process's part files."""

    regimes: tuple[str, ...] = REGIMES
    kinds: tuple[str, ...] = SITE_KINDS
    names: tuple[str, ...] | None = None
    depths: tuple[int | None, int | None] | None = None
    positions: int = 16
    n_crops: int = 64
    crop_batch: int = 16
    tile_overlap: int = 16
    base_size: int | None = None
    fast_imp: bool = False
    seed: int = 0
    keep_nonfinite: bool = False
    writer: str = "0"

    def __post_init__(self) -> None:
        self.regimes = tuple(self.regimes)
        if bad := [r for r in self.regimes if r not in REGIMES]:
            raise ValueError(f"unknown regime(s) {bad}; regimes: {REGIMES}")
        if not self.regimes:
            raise ValueError("no regime to collect")
        for name in ("positions", "n_crops", "crop_batch"):
            setattr(self, name, as_int(getattr(self, name), name, minimum=1))
        self.tile_overlap = as_int(self.tile_overlap, "tile_overlap", minimum=0)
        self.seed = as_int(self.seed, "seed", minimum=0)
        if self.base_size is not None:
            self.base_size = as_int(self.base_size, "base_size", minimum=1)
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", str(self.writer)):
            raise ValueError(
                f"writer must be letters, digits, '_', '.' or '-' (a part-file name), "
                f"got {self.writer!r}"
            )
        self.kinds = tuple(self.kinds)
        self.names = tuple(self.names) if self.names is not None else None


@dataclass
class CollectResult:
    """What a collection did: rows written and chunks written / skipped per regime
    (``rewritten``: part files a resume found broken and wrote again), non-finite values
    dropped (or kept) per site, seconds, the output folder, and ``tlc_noop``: True when
    the tlc regime ran and every TLC window covered its map (TLC changed nothing; a
    ``RuntimeWarning`` says so)."""

    out: Path
    rows: Counter = field(default_factory=Counter)
    written: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    rewritten: Counter = field(default_factory=Counter)
    nonfinite: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    tlc_noop: bool = False


def train_crops(
    dataset: torch.utils.data.Dataset,
    size: int,
    chunk: int,
    batch: int,
    seed: int,
    cache: dict[int, dict] | None = None,
    first: int | None = None,
) -> tuple[list[str], torch.Tensor]:
    """Chunk ``chunk`` of the train regime: ``batch`` random ``size`` x ``size`` crops of
    the inputs of ``dataset`` with a random 90-degree rotation and flip, drawn from
    ``numpy.random.default_rng([seed, chunk])`` (so any chunk can be redrawn alone).
    Returns (ids ``<item id>/c<index>@<y>,<x>``, (batch, C, size, size) tensor); crop
    indices start at ``first`` (default ``chunk * batch``)."""
    rng = np.random.default_rng([seed, chunk])
    cache = {} if cache is None else cache
    start = chunk * batch if first is None else first
    ids, crops = [], []
    for t in range(batch):
        item, y, x, crop = draw_crop(dataset, size, rng, cache, what=f"train_size {size}")
        crops.append(crop(item["input"]))
        ids.append(f"{item['id']}/c{start + t:05d}@{y},{x}")
    return ids, torch.stack(crops)


def _finite(frame: pd.DataFrame, result: CollectResult, keep: bool) -> pd.DataFrame:
    bad = ~np.isfinite(frame["value"].to_numpy())
    if not bad.any():
        return frame
    result.nonfinite.update(frame.loc[bad, "site"].value_counts().to_dict())
    return frame if keep else frame.loc[~bad]


def collect(
    model: nn.Module,
    out: str | Path,
    *,
    model_name: str,
    task: str,
    train_size: int,
    test_data: torch.utils.data.Dataset,
    train_data: torch.utils.data.Dataset | None = None,
    config: CollectConfig | None = None,
    mode: str = "refuse",
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    shard: Shard | None = None,
    on_output: Callable[[str, dict, torch.Tensor], None] | None = None,
) -> CollectResult:
    """Run the regimes of ``config`` and write their statistics under ``out``.

    Args:
        model: the trained global model (eval mode is set here; not modified).
        out: statistics directory (see :mod:`tlc_probe.store`).
        model_name, task: values of the ``model`` and ``task`` columns.
        train_size: the training patch size in pixels (crops, tiles, TLC calibration).
        test_data: items ``{"input": (C, H, W), "id": str}`` for whole / tlc / tiles.
        train_data: the same for the train regime (required if it is collected).
        config: see :class:`CollectConfig`.
        mode: 'refuse' (default: error if ``out`` holds a run), 'resume' (skip chunks
            already written; the configuration must match the existing _run.json) or
            'overwrite' (delete the existing run first).
        meta: extra run metadata (checkpoint, data source ...) for _run.json / schema.
        progress: tqdm bars per regime / per image (rank 0 only).
        shard: this process's share of a job of several ranks
            (:mod:`tlc_probe.jobs.distributed`): it does the chunks
            :meth:`~tlc_probe.jobs.distributed.Shard.takes` gives it, writes its part
            files as writer ``<rank>`` (``config.writer`` is not used), rank 0 clears an
            overwritten run and writes ``_run.json`` (``world_size`` recorded), and every
            rank waits for the others after the checks, after ``_run.json`` and at the
            end. Resuming with another world size is refused. Default: one process.
        on_output: called as ``on_output(regime, item, output)`` with the network's
            output (1, C, H, W) of each whole-image pass of the ``whole`` and ``tlc``
            regimes (the test item as the dataset gave it), so that a caller can score
            the outputs without running the network again (chunks a resumed run skips
            are not run, so not reported).

    Returns:
        A :class:`CollectResult` (of this rank's chunks). Non-finite statistics are
        dropped and counted per site unless ``config.keep_nonfinite``; a
        ``RuntimeWarning`` names them when any occur.
    """
    cfg = config or CollectConfig()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if "train" in cfg.regimes and train_data is None:
        raise ValueError("the train regime needs train_data (the training images)")
    if {"tiles", "window"} & set(cfg.regimes) and not 0 <= cfg.tile_overlap < train_size:
        raise ValueError(f"tile_overlap must be in [0, {train_size}), got {cfg.tile_overlap}")
    out = Path(out)
    shard = shard or Shard()
    many = shard.world_size > 1
    writer = str(shard.rank) if many else cfg.writer
    progress = progress and shard.rank == 0
    existed = has_data(out)
    if existed and mode == "refuse":
        raise FileExistsError(
            f"{out} already holds statistics; pass mode='resume' to complete it or "
            "mode='overwrite' to replace it"
        )
    # Everything is checked before anything under `out` changes: the sites (bad patterns
    # reported), the TLC calibration and windows, the tiling, every image file's header
    # and size, the folder.
    model = model.eval()
    probe_kw = {"kinds": cfg.kinds, "names": cfg.names, "depths": cfg.depths}
    # sites are found and numbered at the training size (functional calls on maps that
    # are 1 x 1 there are no sites; tlc_probe.functional.MIN_PIXELS)
    probe = Probe(
        model, positions=cfg.positions, example=example_input(model, train_size), **probe_kw
    )
    image_regimes = [r for r in ("whole", "tlc", "tiles", "window") if r in cfg.regimes]
    tlc_model = tlc_probe = window_probe = None
    if "tlc" in image_regimes:
        tlc_model = convert(
            model,
            train_size=train_size,
            base_size=cfg.base_size,
            mode="fast" if cfg.fast_imp else "exact",
        )
        tlc_probe = Probe(tlc_model, positions=cfg.positions, **probe_kw)
    if "window" in image_regimes:
        windows = training_windows(model, train_size, cfg.tile_overlap)
        window_probe = Probe(model, positions=cfg.positions, windows=windows, **probe_kw)
    if image_regimes:
        if not len(test_data):
            raise ValueError("no test images to collect the image regimes on")
        check_images(test_data, progress=progress)
        if {"tiles", "window"} & set(image_regimes):  # a runaway tiling, on the first image
            check_tiling(*test_data[0]["input"].shape[-2:], train_size, cfg.tile_overlap)
    if "train" in cfg.regimes:
        check_images(train_data, min_size=train_size, progress=progress)
    samples = {"test": manifest(test_data) if image_regimes else None}
    if "train" in cfg.regimes:
        samples["train"] = manifest(train_data)
    check_writable(out)
    run = {
        "model": model_name,
        "task": task,
        "train_size": int(train_size),
        "base_size": cfg.base_size if cfg.base_size is not None else int(1.5 * train_size),
        "config": {**asdict(cfg), **({"writer": "<rank>"} if many else {})},
        "world_size": shard.world_size,
        **(meta or {}),
    }
    # The sample list goes to _run.json only; part files carry its hash (their footers
    # stay small: readers parse every footer).
    run["samples_sha256"] = hashlib.sha256(json.dumps(samples, sort_keys=True).encode()).hexdigest()
    if existed and mode == "resume":
        old = read_run_json(out) or {}
        if (had := int(old.get("world_size", 1))) != shard.world_size:
            raise ValueError(
                f"cannot resume {out}: it was collected by {had} process(es) and this "
                f"run has {shard.world_size}; resume with the same number of processes "
                "(torchrun --nproc_per_node) or use mode='overwrite'"
            )
        mine = json.loads(json.dumps(_comparable({**run, "samples": samples}, old), default=str))
        theirs = _comparable(old)
        present = {s.kind for s in probe.all_sites}  # a kind the model lacks changes nothing
        for cfg_ in (mine.get("config", {}), theirs.get("config", {})):
            for key in _RETIRED_CONFIG:  # speed settings of older versions
                cfg_.pop(key, None)
            if "kinds" in cfg_:
                cfg_["kinds"] = sorted(set(cfg_["kinds"]) & present)
        if "samples" not in theirs:  # written before runs recorded their samples
            warnings.warn(
                f"{out} was collected by an older tlc-probe that did not record its "
                "samples: the data cannot be checked, only the settings",
                RuntimeWarning,
                stacklevel=2,
            )
            mine.pop("samples")
        elif theirs["samples"] != mine["samples"]:
            raise ValueError(
                f"cannot resume {out}: the data changed since it was collected "
                f"({_samples_diff(theirs['samples'], mine['samples'])}); use "
                "mode='overwrite' or another out"
            )
        if theirs != mine:
            raise ValueError(
                f"cannot resume {out}: its _run.json was made with other settings "
                f"({_diff(theirs, mine)}); use mode='overwrite' or another out"
            )
    shard.barrier()  # every rank has checked before anything under `out` changes
    if existed:
        if mode == "overwrite" and shard.rank == 0:
            clear_store(out)
        elif mode == "resume":
            clear_tmp(out, writer)  # this writer's unfinished part files
    run["versions"] = {
        "tlc_probe": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    run["command"] = " ".join(sys.argv)
    if shard.rank == 0:
        write_run_json(out, {**run, "samples": samples})
    shard.barrier()

    result = CollectResult(out=out)
    device = model_device_dtype(model)[0]  # where the crops and tiles run (their batches)
    t0 = time.perf_counter()
    base = {"model": model_name, "task": task}

    def emit(
        regime: str,
        chunk: int,
        ids: Sequence[str],
        net: nn.Module,
        batches,
        p: Probe,
        also: Sequence[tuple[str, Probe]] = (),
        item: dict | None = None,
    ):
        # ``also``: other (regime, probe) pairs recording the same passes (whole and
        # window run one network on one input and differ only in what is averaged);
        # ``item``: the test item of a whole-image pass, its output given to on_output
        pairs = [(regime, p), *also]
        with torch.no_grad(), ExitStack() as stack:
            for _, q in pairs:
                stack.enter_context(q)
            for x in batches:
                y = net(to_model(model, x))
        if on_output is not None and item is not None:
            on_output(regime, item, y[0] if isinstance(y, tuple | list) else y)
        for r, q in pairs:
            frame = _finite(q.take(ids).assign(**base), result, cfg.keep_nonfinite)
            write_part(frame, part_path(out, r, chunk, writer), run)
            result.rows[r] += len(frame)
            result.written[r] += 1

    def done(regime: str, chunk: int) -> bool:
        # a part file that cannot be read (truncated, foreign) is written again
        path = part_path(out, regime, chunk, writer)
        if not path.exists():
            return False
        if part_is_whole(path):
            result.skipped[regime] += 1
            return True
        path.unlink()
        result.rewritten[regime] += 1
        return False

    if "train" in cfg.regimes:
        n_chunks = math.ceil(cfg.n_crops / cfg.crop_batch)
        cache: dict[int, dict] = {}
        mine = [j for j in range(n_chunks) if shard.takes(j)]
        for j in tqdm(mine, desc="train crops", disable=not progress):
            if done("train", j):
                continue
            size = min(cfg.crop_batch, cfg.n_crops - j * cfg.crop_batch)
            first = j * cfg.crop_batch
            ids, x = train_crops(train_data, train_size, j, size, cfg.seed, cache, first)
            emit("train", j, ids, model, pixel_batches(x, device), probe)
        cache.clear()

    watch = watch_coverage(tlc_model) if tlc_model is not None else nullcontext()
    with watch as cov:  # the maps the TLC model's local sites see, over all images
        if image_regimes:
            mine = [j for j in range(len(test_data)) if shard.takes(j)]
            bar = tqdm(mine, desc="test images", disable=not progress)
            for j in bar:
                todo = [r for r in image_regimes if not done(r, j)]
                if not todo:
                    continue
                item = test_data[j]
                img = item["input"]
                shared = "whole" in todo and "window" in todo
                for regime in todo:
                    if regime == "window" and shared:
                        continue  # recorded by whole's pass
                    bar.set_postfix(image=item["id"], regime=regime)
                    if regime == "whole":
                        also = [("window", window_probe)] if shared else []
                        emit(regime, j, [item["id"]], model, [img[None]], probe, also, item)
                    elif regime == "tlc":
                        emit(regime, j, [item["id"]], tlc_model, [img[None]], tlc_probe, (), item)
                    elif regime == "window":
                        emit(regime, j, [item["id"]], model, [img[None]], window_probe)
                    else:
                        boxes, tiles = image_tiles(img, train_size, cfg.tile_overlap)
                        ids = [f"{item['id']}/t{k:03d}@{y},{x}" for k, (y, x) in enumerate(boxes)]
                        emit(regime, j, ids, model, pixel_batches(tiles, device), probe)
    result.seconds = time.perf_counter() - t0
    if cov is not None and cov.noop:
        result.tlc_noop = True
        warnings.warn(
            cov.message(f"in the tlc regime of {model_name}"), RuntimeWarning, stacklevel=2
        )
    shard.barrier()  # the run is complete when every rank's files are
    if result.nonfinite:
        what = "kept" if cfg.keep_nonfinite else "dropped"
        warnings.warn(
            f"non-finite statistics {what}, per site: {dict(result.nonfinite)}",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


# world_size is checked on its own, the samples themselves instead of their hash
_VOLATILE = (*INCIDENTAL, "samples_sha256")


#: Settings older versions recorded that change only speed (now chosen automatically).
_RETIRED_CONFIG = ("tile_batch",)


#: Run metadata a store written before tlc-probe recorded it lacks (not a difference).
_ADDED_LATER = ("architecture", "test_set", "train_images")


def _comparable(run: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """``run`` less what may differ between two runs of one configuration; with ``old``
    (the stored run), also less the keys recorded only since ``old`` was written."""
    late = [k for k in _ADDED_LATER if old is not None and k not in old]
    return {k: v for k, v in run.items() if k not in _VOLATILE and k not in late}


def _samples_diff(old: dict | None, new: dict) -> str:
    """What differs between two ``samples`` records (:func:`~tlc_probe.data.manifest`),
    in a few words: items added, removed, reordered or changed, per split."""
    old = old or {}
    parts = []
    for split in sorted(set(old) | set(new)):
        a, b = old.get(split), new.get(split)
        if a == b:
            continue
        if a is None or b is None:
            parts.append(f"{split}: not recorded before" if a is None else f"{split}: dropped")
            continue
        by_id = {e[0]: e for e in a}
        ids_b = {e[0] for e in b}
        added = [e[0] for e in b if e[0] not in by_id]
        gone = [i for i in by_id if i not in ids_b]
        changed = [e[0] for e in b if e[0] in by_id and by_id[e[0]] != e]
        words = []
        if added:
            words.append(f"{len(added)} added {added[:3]}")
        if gone:
            words.append(f"{len(gone)} removed {gone[:3]}")
        if changed:
            words.append(f"{len(changed)} changed on disk {changed[:3]}")
        if not words:
            words.append("same items in another order")
        parts.append(f"{split} images: " + ", ".join(words))
    return "; ".join(parts)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The settings that differ, one ``key: old -> new`` each (nested keys dotted)."""
    a, b = _flat(a), _flat(b)
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


def datasets_for(
    task: str,
    *,
    data: str | Path | None = None,
    layout: str = "pairs",
    train_data: str | Path | None = None,
    n_per_photo: int = 1,
    seed: int = 0,
    train_config: dict[str, Any] | None = None,
) -> tuple[torch.utils.data.Dataset | None, torch.utils.data.Dataset, str]:
    """The (train, test) datasets of a collection and a description of them: the
    :class:`~tlc_probe.jobs.images.ImageSource` of these arguments (its ``train_set``,
    ``test_set`` and ``describe``)."""
    src = ImageSource(data, layout, train_data, seed, n_per_photo)
    return (
        src.train_set(task, train_config),
        src.test_set(task),
        src.describe(task, train_config),
    )


def collect_checkpoint(
    checkpoint: str | Path | Subject | nn.Module,
    out: str | Path,
    *,
    task: str | None = None,
    train_size: int | None = None,
    model_name: str | None = None,
    preset: str | None = None,
    name: str | None = None,
    data: str | Path | None = None,
    layout: str = "pairs",
    train_data: str | Path | None = None,
    n_per_photo: int = 1,
    n_images: int | None = None,
    images: ImageSource | None = None,
    config: CollectConfig | None = None,
    mode: str = "refuse",
    progress: bool = True,
    shard: Shard | None = None,
    device: str | torch.device | None = None,
    on_output: Callable[[str, dict, torch.Tensor], None] | None = None,
) -> CollectResult:
    """:func:`collect` for a checkpoint file (or a :class:`~tlc_probe.jobs.subject.Subject`,
    or an own ``nn.Module`` with ``name``, ``task`` and ``train_size``), run on ``device``
    (default: the CPU) as ``shard`` of a job (default: one process).

    The model and its run name come from :func:`~tlc_probe.jobs.subject.load_subject`
    (``model_name`` is the zoo architecture to build, with ``preset``, for a checkpoint
    without tlc-probe metadata; without it spandrel detects the architecture; ``name``
    is the run name, by default ``<name>-<preset>`` of a tlc-probe checkpoint and the
    file's stem otherwise). The images: ``images``, or the
    :class:`~tlc_probe.jobs.images.ImageSource` of ``data``, ``layout``, ``train_data``,
    ``n_per_photo`` and the config's seed; ``n_images`` keeps only the first test images.
    ``on_output`` as in :func:`collect`.
    """
    cfg = config or CollectConfig()
    subject = as_subject(
        checkpoint, model=model_name, preset=preset, task=task, train_size=train_size, name=name
    )
    if images is None:
        images = ImageSource(data, layout, train_data, cfg.seed, n_per_photo)
    model = subject.model if device is None else to_device(subject.model, device)
    train_config = subject.meta.get("train_config")
    train_set = images.train_set(subject.task, train_config)
    test_set = images.test_set(subject.task)
    source = images.describe(subject.task, train_config)
    if n_images is not None:
        test_set = torch.utils.data.Subset(test_set, range(min(n_images, len(test_set))))
        source += f", first {n_images} image(s)"
    if "train" in cfg.regimes and train_set is None:
        raise ValueError(
            "the train regime needs training images: pass train_data= (a folder of the "
            "same layout) or leave 'train' out of the regimes"
        )
    run_meta = {
        **{k: subject.meta[k] for k in ("checkpoint", "checkpoint_sha256") if k in subject.meta},
        "architecture": subject.meta.get("architecture"),
        "preset": subject.meta.get("preset"),
        "data": source,
        "test_set": images.label(),
        "train_images": images.describe_train(subject.task, train_config),
        "fast_imp": cfg.fast_imp,
        "tile_overlap": cfg.tile_overlap,
        "seed": cfg.seed,
    }
    return collect(
        model,
        out,
        model_name=subject.name,
        task=subject.task,
        train_size=subject.train_size,
        test_data=test_set,
        train_data=train_set,
        config=cfg,
        mode=mode,
        meta=run_meta,
        progress=progress,
        shard=shard,
        on_output=on_output,
    )
