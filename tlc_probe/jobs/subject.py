"""The network a run studies, with one identity shared by every job.

A :class:`Subject` is a model in eval mode with the four facts every job needs: its run
``name`` (the ``model`` column of statistics, reliance, bench and shift tables), its
``task``, its training patch size ``train_size`` and where it came from (``meta``). Every
command that takes a checkpoint builds it with :func:`load_subject` from the same
options (``--checkpoint``, ``--model/--preset``, ``--task``, ``--train-size``,
``--name``), so the outputs of one checkpoint always carry one name and join.

The default name is derived once, here:

* a tlc-probe checkpoint (its metadata names the zoo model): ``<name>-<preset>``, e.g.
  ``hinet-tiny``;
* any other checkpoint (a published release, whether built from the zoo with
  ``model=`` or detected by spandrel): the file's stem, e.g. ``NAFNet-GoPro-width32``
  for ``NAFNet-GoPro-width32.pth``; so ``collect --model nafnet`` and ``reliance``
  through spandrel name the same file the same way.

``name=`` overrides it (two checkpoints of one architecture, side by side).

Example::

    from tlc_probe.jobs import load_subject, subject_from_model

    s = load_subject("NAFNet-GoPro-width32.pth", model="nafnet", preset="official",
                     task="deblur", train_size=256)
    mine = subject_from_model(my_net, name="unet-a", task="deblur", train_size=128)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..data.synth import TASKS
from ..models import build
from ..sizes import as_int
from ..store.checkpoint import build_from_checkpoint, load_checkpoint, model_label, read_checkpoint
from ..tensors import channels_last_on_cpu
from ..tlc.convert import check_train_size
from .images import ImageSource, Items

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


@dataclass
class Subject:
    """A network under study: ``model`` (eval mode), its run ``name``, ``task``
    ('deblur' | 'derain' | 'dehaze'), ``train_size`` (training patch side, px) and
    ``meta`` (architecture, preset, checkpoint path and sha256, training config, ... as
    far as known; written into the run metadata)."""

    model: nn.Module
    name: str
    task: str
    train_size: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = check_name(self.name)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        self.train_size = as_int(self.train_size, "train_size", minimum=1)
        check_train_size(self.train_size)


def check_name(name: object) -> str:
    """``name`` if it is a usable run name (letters, digits, ``_ . + -``; it names
    folders and table rows), else ``ValueError``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"name must be letters, digits, '_', '.', '+' or '-' (it names folders and "
            f"rows), got {name!r}"
        )
    return name


def default_name(checkpoint: str | Path, meta: dict[str, Any]) -> str:
    """The run name of a checkpoint when none is given: ``<name>-<preset>`` of a
    tlc-probe checkpoint's metadata, else the file's stem (characters a folder name
    cannot hold replaced by ``_``)."""
    if "name" in meta:
        return model_label(meta)
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(checkpoint).stem).lstrip(".") or "model"
    return stem


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_subject(
    checkpoint: str | Path,
    *,
    model: str | None = None,
    preset: str | None = None,
    task: str | None = None,
    train_size: int | None = None,
    name: str | None = None,
) -> Subject:
    """The :class:`Subject` of a checkpoint file.

    Args:
        checkpoint: a tlc-probe checkpoint (it knows its architecture, task and
            train_size), a published one (``{"params": ...}``, ``state_dict`` ...) or any
            state dict spandrel recognises.
        model: zoo architecture to build for a checkpoint without tlc-probe metadata
            (default: spandrel detects the architecture). Refused for a tlc-probe
            checkpoint that records another architecture.
        preset: its preset (default ``"official"``); refused without ``model``.
        task: 'deblur' | 'derain' | 'dehaze'; required for a checkpoint without
            metadata, and for a tlc-probe checkpoint it must agree with what it records.
        train_size: the training patch side (px); likewise.
        name: the run name (default :func:`default_name`).

    Returns:
        The subject; ``meta`` holds ``checkpoint``, ``checkpoint_sha256``,
        ``architecture``, ``preset`` and the checkpoint's own metadata.

    Raises:
        ValueError: missing task / train_size, a contradiction with the checkpoint's
            metadata, weights that do not fit ``model``; ImportError: spandrel needed
            and missing.
    """
    _, meta = read_checkpoint(checkpoint)
    if preset is not None and model is None:
        raise ValueError(f"preset={preset!r} is a preset of model=, which was not given")
    preset = preset or "official"
    own = dict(meta)  # the file's own metadata names the run by default
    if "name" not in meta and (task is None or train_size is None):
        raise ValueError(
            f"{checkpoint} carries no tlc-probe metadata: give its task= and train_size=, "
            "and name its architecture with model= (and preset=) or let spandrel detect it"
        )
    if "name" in meta:
        if model is not None and model != meta["name"]:
            raise ValueError(
                f"{checkpoint} is a tlc-probe checkpoint of {meta['name']!r}, not of "
                f"model {model!r}: leave model= out"
            )
        net, meta = build_from_checkpoint(checkpoint, task=task, train_size=train_size)
        arch, preset = meta["name"], meta.get("preset", "tiny")
    elif model is not None:
        net = build(model, preset)
        load_checkpoint(net, checkpoint)
        net.eval()
        arch, meta = model, {"name": model, "preset": preset}
    else:
        net, meta = build_from_checkpoint(checkpoint, task=task, train_size=train_size)
        arch, preset = meta.get("architecture", meta["name"]), "spandrel"
    task = task or meta.get("task")
    train_size = train_size if train_size is not None else meta.get("train_size")
    if task is None or train_size is None:
        said = " and ".join(
            k for k, v in (("task=", task), ("train_size=", train_size)) if v is None
        )
        raise ValueError(f"{checkpoint} records no {said.replace('=', '')}: pass {said}")
    info = {
        **meta,
        "architecture": arch,
        "preset": preset,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": _sha256(checkpoint),
    }
    info.pop("task", None)
    info.pop("train_size", None)
    return Subject(
        channels_last_on_cpu(net),
        name if name is not None else default_name(checkpoint, own),
        str(task),
        train_size,  # type: ignore[arg-type]
        info,
    )


def subject_from_model(
    model: nn.Module,
    *,
    name: str,
    task: str,
    train_size: int,
    meta: dict[str, Any] | None = None,
) -> Subject:
    """A :class:`Subject` of an own ``nn.Module`` (put in eval mode; its forward takes a
    (N, 3, H, W) image in [0, 1] and returns the restored image, or a list / tuple whose
    first entry is it). ``meta``: anything to record in the run metadata."""
    return Subject(
        model.eval(), name, task, train_size, {"architecture": type(model).__name__, **(meta or {})}
    )


def as_subject(
    source: Subject | nn.Module | str | Path,
    *,
    model: str | None = None,
    preset: str | None = None,
    task: str | None = None,
    train_size: int | None = None,
    name: str | None = None,
) -> Subject:
    """``source`` as a :class:`Subject`: a subject as it is (the other arguments must be
    left out, or agree), a checkpoint path through :func:`load_subject`, an
    ``nn.Module`` through :func:`subject_from_model` (``name``, ``task`` and
    ``train_size`` required)."""
    if isinstance(source, Subject):
        given = {"task": task, "train_size": train_size, "name": name}
        if clash := [k for k, v in given.items() if v is not None and v != getattr(source, k)]:
            raise ValueError(f"{', '.join(clash)} contradict(s) the subject {source.name!r}")
        if model is not None:
            raise ValueError("model= names an architecture to build: not for a built subject")
        return source
    if isinstance(source, nn.Module):
        if missing := [
            k for k, v in (("name", name), ("task", task), ("train_size", train_size)) if v is None
        ]:
            raise ValueError(f"a model object needs {', '.join(f'{k}=' for k in missing)}")
        return subject_from_model(source, name=name, task=task, train_size=train_size)  # type: ignore[arg-type]
    return load_subject(
        source, model=model, preset=preset, task=task, train_size=train_size, name=name
    )


def load_for_test(
    source: Subject | nn.Module | str | Path,
    n_photos: int | None = None,
    seed: int = 0,
    *,
    images: ImageSource | None = None,
    **identity: Any,
) -> tuple[Subject, Items]:
    """(the :class:`~tlc_probe.jobs.subject.Subject` of ``source``, its test items).

    ``source``: a subject, a checkpoint (:func:`~tlc_probe.jobs.subject.load_subject`
    with ``identity``: ``model``, ``preset``, ``task``, ``train_size``, ``name``) or an
    own module (``name``, ``task``, ``train_size`` required). The items are the first
    ``n_photos`` (all if None) of ``images``' test set for the subject's task (default:
    the bundled test photos degraded with ``seed``), read lazily."""
    subject = as_subject(source, **identity)
    images = images if images is not None else ImageSource(seed=seed)
    return subject, images.test_items(subject.task, n_photos)
