"""``TrainingRecorder``: the global layers' statistics recorded while a network trains, in
any training loop.

Every ``every`` steps (or at the given ``steps``) the recorder writes, into one statistics
store (:mod:`tlc_probe.store`, rows with a ``step`` column):

* ``train``: what the sites aggregated in that step's own training forward passes (train
  mode, under autograd; the hooks read detached values under ``no_grad`` and move them to
  the host once per recorded step, so gradients are untouched);
* ``whole`` and ``tlc`` (and any of ``regimes``): the model after that step's update, in
  eval mode under ``no_grad``, on the ``probe_images``; ``tlc`` converts a copy of the
  model at that step (:func:`tlc_probe.convert`); the train mode is restored afterwards;
* ``_quality.csv``: the mean PSNR (dB) of those outputs against the probe images'
  targets, per step and regime (:func:`read_quality`).

Hooks record only passes in train mode under autograd, and only in the steps to be
recorded: validation passes (eval mode or ``no_grad``) are never mixed in, and the steps not
recorded cost a Python call per site. The ``tlc`` model is converted once on entry (so a
site that cannot be made local is reported before training goes on) and gets the current
weights at each recorded step.

Example::

    with TrainingRecorder(model, "stats/run1", every=100, train_size=64,
                          probe_images=held_out_items("deblur")) as rec:
        for step, (x, y) in enumerate(loader):
            loss = (model(x) - y).abs().mean()
            opt.zero_grad(); loss.backward(); opt.step()
            rec.step(step)  # cheap except every `every` steps
"""

from __future__ import annotations

import platform
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._version import __version__
from ..metrics.image import psnr
from ..probe import Probe
from ..sites import SITE_KINDS
from ..store.atomic import atomic_write
from ..store.parts import clear as clear_store
from ..store.parts import (
    clear_tmp,
    has_data,
    part_path,
    part_writer_chunk,
    parts,
    read_run_json,
    write_part,
    write_run_json,
)
from ..tensors import eval_mode, to_model
from ..tlc import convert

#: Regimes the recorder can evaluate on the probe images at a recorded step.
EVAL_REGIMES = ("whole", "tlc")
QUALITY_CSV = "_quality.csv"
QUALITY_COLUMNS = ["model", "task", "step", "regime", "psnr", "n_images"]
MODES = ("refuse", "resume", "overwrite")


def _items(probe_images: Iterable[Any]) -> list[dict]:
    items = []
    for i, im in enumerate(probe_images):
        item = dict(im) if isinstance(im, dict) else {"input": im}
        if not isinstance(item.get("input"), torch.Tensor) or item["input"].dim() != 3:
            raise ValueError(f"probe_images[{i}] must be a (C, H, W) tensor or a dict with one")
        item.setdefault("id", f"probe{i}")
        items.append(item)
    return items


def read_quality(root: str | Path) -> pd.DataFrame:
    """The probe-image PSNR a recorder wrote under ``root``: columns model, task, step,
    regime, psnr (dB, mean over the probe images with targets), n_images; empty if none."""
    path = Path(root) / QUALITY_CSV
    if not path.exists():
        return pd.DataFrame(columns=QUALITY_COLUMNS)
    return pd.read_csv(path)


class TrainingRecorder:
    """Record the statistics of ``model``'s global-aggregation sites during training.

    Args:
        model: the network being trained (its forward passes inside the ``with`` block
            feed the ``train`` rows).
        out: statistics directory (one model and task, see :mod:`tlc_probe.store`).
        train_size: training patch size in pixels (TLC calibration of the ``tlc`` regime).
        every: record the steps ``s`` with ``s % every == 0``.
        steps: record exactly these steps instead of every ``every``.
        probe_images: (C, H, W) tensors or items ``{"input", "target" (optional), "id"}``
            for the image regimes; none: train rows only.
        regimes: image regimes at each recorded step, a subset of ('whole', 'tlc').
        model_name, task: values of the ``model`` and ``task`` columns (default: the zoo
            ``<name>-<preset>`` and task of a model built by :func:`tlc_probe.models.build`).
        kinds, positions: as in :class:`tlc_probe.Probe`; fast_imp: the TLC copy with
            ``convert(mode="fast")``.
        first_step: the number of the first step :meth:`step` will be called with (a
            resumed training passes its next step).
        mode: 'refuse' (error if ``out`` holds a run), 'resume' (same settings and writer;
            keep the steps before ``first_step``, drop and record again those at or after
            it) or 'overwrite'.
        writer: id in the part-file names.
        keep_nonfinite: write NaN/Inf rows instead of dropping (and warning about) them.
    """

    def __init__(
        self,
        model: nn.Module,
        out: str | Path,
        *,
        train_size: int,
        every: int = 100,
        steps: Iterable[int] | None = None,
        probe_images: Iterable[Any] = (),
        regimes: Sequence[str] = EVAL_REGIMES,
        model_name: str | None = None,
        task: str | None = None,
        kinds: Iterable[str] = SITE_KINDS,
        positions: int = 16,
        fast_imp: bool = False,
        first_step: int = 0,
        mode: str = "refuse",
        writer: str = "0",
        keep_nonfinite: bool = False,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if bad := [r for r in regimes if r not in EVAL_REGIMES]:
            raise ValueError(f"regimes must be a subset of {EVAL_REGIMES}, got {bad}")
        zoo = getattr(model, "zoo", {})
        self.model = model
        self.out = Path(out)
        self.train_size = int(train_size)
        self.every = int(every)
        self.steps = None if steps is None else {int(s) for s in steps}
        self.items = _items(probe_images)
        self.regimes = tuple(regimes) if self.items else ()
        default_name = f"{zoo['name']}-{zoo['preset']}" if zoo else type(model).__name__
        self.model_name = model_name or default_name
        self.task = task or zoo.get("task", "unknown")
        self.kinds = tuple(kinds)
        self.positions = positions
        self.fast_imp = fast_imp
        self.first_step = int(first_step)
        self.mode = mode
        self.writer = writer
        self.keep_nonfinite = keep_nonfinite
        self.recorded: list[int] = []
        self.nonfinite = 0
        self._armed = False
        self._train_probe: Probe | None = None
        self._whole_probe: Probe | None = None
        self._tlc: nn.Module | None = None
        self._tlc_probe: Probe | None = None
        self._quality: list[dict] = []
        self._run: dict[str, Any] = {}

    # -- which steps ---------------------------------------------------------------------
    def records(self, step: int) -> bool:
        """Whether ``step`` is one of the recorded steps."""
        return step in self.steps if self.steps is not None else step % self.every == 0

    def _recording(self) -> bool:
        # a training forward pass: armed step, train mode, under autograd
        return self._armed and self.model.training and torch.is_grad_enabled()

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> TrainingRecorder:
        probe_kw = {"kinds": self.kinds, "positions": self.positions}
        # sites are found (and a bad selection reported) before anything is written
        self._train_probe = Probe(self.model, enabled=self._recording, **probe_kw)
        self._whole_probe = Probe(self.model, **probe_kw)
        if "tlc" in self.regimes:  # converted once (errors show now); weights copied per step
            self._tlc = convert(
                self.model, train_size=self.train_size, mode="fast" if self.fast_imp else "exact"
            )
            self._tlc_probe = Probe(self._tlc, **probe_kw)
        self._run = {
            "model": self.model_name,
            "task": self.task,
            "train_size": self.train_size,
            "base_size": int(1.5 * self.train_size),
            "recorder": {
                "every": self.every,
                "steps": sorted(self.steps) if self.steps is not None else None,
                "regimes": list(self.regimes),
                "probe_images": [it["id"] for it in self.items],
                "kinds": list(self.kinds),
                "positions": self.positions,
                "fast_imp": self.fast_imp,
                "writer": self.writer,
            },
        }
        self._prepare()
        self._run["versions"] = {
            "tlc_probe": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        self._run["command"] = " ".join(sys.argv)
        write_run_json(self.out, self._run)
        self._armed = self.records(self.first_step)
        self._train_probe.__enter__()
        return self

    def _prepare(self) -> None:
        if not has_data(self.out):
            return
        if self.mode == "refuse":
            raise FileExistsError(
                f"{self.out} already holds statistics; pass mode='resume' to continue them or "
                "mode='overwrite' to replace them"
            )
        if self.mode == "overwrite":
            clear_store(self.out)
            (self.out / QUALITY_CSV).unlink(missing_ok=True)
            return
        old = read_run_json(self.out) or {}
        mine = {k: self._run[k] for k in ("model", "task", "train_size", "recorder")}
        theirs = {k: old.get(k) for k in mine}
        if theirs != mine:
            raise ValueError(
                f"cannot resume {self.out}: its _run.json was recorded with other settings "
                f"({theirs} -> {mine}); use mode='overwrite' or another out"
            )
        clear_tmp(self.out, self.writer)
        for p in parts(self.out):  # steps at or after the restart are recorded again
            writer, chunk = part_writer_chunk(p)
            if writer == self.writer and chunk >= self.first_step:
                p.unlink()
        quality = read_quality(self.out)
        self._quality = quality[quality["step"] < self.first_step].to_dict(orient="records")
        self._write_quality()

    def __exit__(self, *exc) -> None:
        self._armed = False
        if self._train_probe is not None:
            self._train_probe.remove()

    # -- the step ----------------------------------------------------------------------------
    def step(self, step: int) -> bool:
        """Call after training step ``step`` (its forward passes happened since the last
        call). At a recorded step write the train rows of those passes and run the image
        regimes on the probe images; then arm the hooks for step ``step + 1``. Returns
        whether ``step`` was recorded."""
        if self._train_probe is None or not self._train_probe.active:
            raise RuntimeError("TrainingRecorder.step() outside its with block")
        recorded = self.records(step)
        probe = self._train_probe
        if recorded and self._armed and probe.pending():
            ids = [f"step{step}/s{i}" for i in range(probe.pending())]
            try:
                rows = probe.take(ids)
            except ValueError as e:  # never stop the user's training for a bookkeeping error
                warnings.warn(f"step {step}: train rows skipped: {e}", RuntimeWarning, stacklevel=2)
            else:
                self._write("train", step, rows)
        else:
            probe.clear()
        if recorded and self.regimes:
            self._image_regimes(step)
        if recorded:
            self.recorded.append(step)
        self._armed = self.records(step + 1)
        return recorded

    def _write(self, regime: str, step: int, frame: pd.DataFrame) -> None:
        frame = frame.assign(model=self.model_name, task=self.task, step=np.int64(step))
        bad = ~np.isfinite(frame["value"].to_numpy())
        if bad.any():
            self.nonfinite += int(bad.sum())
            warnings.warn(
                f"step {step}, {regime}: {int(bad.sum())} non-finite statistics "
                + ("kept" if self.keep_nonfinite else "dropped"),
                RuntimeWarning,
                stacklevel=3,
            )
            if not self.keep_nonfinite:
                frame = frame.loc[~bad]
        write_part(frame, part_path(self.out, regime, step, self.writer), self._run)

    def _image_regimes(self, step: int) -> None:
        nets: dict[str, tuple[nn.Module, Probe]] = {}
        if "whole" in self.regimes:
            nets["whole"] = (self.model, self._whole_probe)
        if self._tlc is not None:
            self._tlc.load_state_dict(self.model.state_dict())  # same keys: this step's weights
            nets["tlc"] = (self._tlc, self._tlc_probe)
        with eval_mode(self.model), eval_mode(nets.get("tlc", (self.model,))[0]):
            for regime, (net, probe) in nets.items():
                probe.clear()
                scores = []
                with torch.no_grad(), probe:
                    for item in self.items:
                        out = net(to_model(net, item["input"][None]))
                        if isinstance(out, tuple | list):  # multi-output nets: the first
                            out = out[0]
                        if "target" in item:
                            scores.append(psnr(out[0].clamp(0, 1).cpu(), item["target"]))
                self._write(regime, step, probe.take([it["id"] for it in self.items]))
                if scores:
                    row = {"model": self.model_name, "task": self.task, "step": step}
                    row.update(regime=regime, psnr=float(np.mean(scores)))
                    self._quality.append({**row, "n_images": len(scores)})
        self._write_quality()

    def _write_quality(self) -> None:
        table = pd.DataFrame(self._quality, columns=QUALITY_COLUMNS)
        atomic_write(self.out / QUALITY_CSV, lambda p: table.to_csv(p, index=False))
