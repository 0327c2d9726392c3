"""Checkpoints: safe loading of the published formats, and tlc-probe's own with metadata.

Published wrappers: BasicSR (HINet, NAFNet) saves ``{"params": sd}`` (sometimes also
``"params_ema"``), MPRNet ``{"state_dict": sd, ...}``, FFA-Net ``{"model": sd, "step": ...}``
with DataParallel's ``module.`` prefix; plain ``torch.save(model.state_dict())`` is raw.
Everything is read with ``torch.load(weights_only=True)`` (no pickle code execution); numpy
scalars and arrays, which some training logs store beside the weights, are allowed as data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models import build
from ..sizes import as_int
from .atomic import atomic_write

FORMAT = "tlc-probe/1"
#: Wrapper keys tried in order when the file is not a raw state_dict.
WRAPPER_KEYS = ("params", "params_ema", "state_dict", "model", "net")
META_FIELDS = ("name", "preset", "task", "train_size", "iterations", "seed", "config")


def _numpy_safe_globals() -> list:
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray, np.dtype] + [
        type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")
    ]


def _why_unsafe(error: Exception) -> str:
    """The one line of torch's refusal that says what was found (e.g. ``Unsupported
    global: GLOBAL posix.system``), without its advice to load with full pickle."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for ln in lines:
        if "Unsupported" in ln or "GLOBAL" in ln or "Unpickler" in ln:
            return ln.removeprefix("WeightsUnpickler error: ")
    return lines[0] if lines else type(error).__name__


def _load_file(path: str | os.PathLike) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}" + (" (a folder)" if p.is_dir() else ""))
    with open(p, "rb") as f:
        head = f.read(4)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes), not a checkpoint")
    if head != b"PK\x03\x04" and head[:1] != b"\x80":
        raise ValueError(
            f"{path} is not a PyTorch checkpoint (neither torch.save's zip format nor a pickle)"
        )
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle.UnpicklingError and friends: say why, plainly
            text = str(e)
            if any(
                m in text
                for m in ("failed reading zip", "central directory", "Ran out of input", "EOF")
            ):
                raise ValueError(
                    f"{path} is truncated or not a PyTorch checkpoint "
                    f"({text.splitlines()[0] if text else type(e).__name__})"
                ) from e
            raise ValueError(
                f"{path} cannot be read safely (weights_only=True): {_why_unsafe(e)}. "
                "tlc-probe never unpickles arbitrary objects; re-save the state_dict alone."
            ) from e


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def read_checkpoint(
    source: str | os.PathLike | Mapping, key: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and metadata of a checkpoint file (or an already loaded object).

    Args:
        source: path of a ``.pt``/``.pth`` file, or the loaded object.
        key: wrapper key to take the weights from; by default the first of
            :data:`WRAPPER_KEYS` present, or the object itself if it is a raw state_dict.

    Returns:
        (state_dict with any leading ``module.`` stripped, metadata dict — empty for
        checkpoints not written by tlc-probe).
    """
    obj = source if isinstance(source, Mapping) else _load_file(source)
    if not isinstance(obj, Mapping):
        raise ValueError(f"checkpoint holds a {type(obj).__name__}, not a dict of weights")
    meta = dict(obj.get("meta", {})) if obj.get("format") == FORMAT else {}
    if "train_size" in meta:
        where = source if not isinstance(source, Mapping) else "checkpoint"
        try:
            as_int(meta["train_size"], "train_size", minimum=1)
        except ValueError as e:
            raise ValueError(f"{where}: broken metadata, {e}") from None
    if key is not None:
        if key not in obj:
            raise ValueError(f"checkpoint has no key {key!r}; keys: {sorted(map(str, obj))}")
        sd = obj[key]
    elif _is_state_dict(obj):
        sd = obj
    else:
        found = [k for k in WRAPPER_KEYS if k in obj and _is_state_dict(obj[k])]
        if not found:
            raise ValueError(
                f"no state_dict in checkpoint: not raw, and none of {WRAPPER_KEYS} holds one "
                f"(keys: {sorted(map(str, obj))[:10]})"
            )
        sd = obj[found[0]]
    if not _is_state_dict(sd):
        raise ValueError("the selected checkpoint entry is not a dict of tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd), meta


def _mismatch_report(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" ... (+{len(items) - 5} more)" if len(items) > 5 else ""
            parts.append(f"{len(items)} {label}: " + ", ".join(items[:5]) + more)
    return "; ".join(parts)


def load_checkpoint(
    model: nn.Module,
    source: str | os.PathLike | Mapping,
    strict: bool = True,
    key: str | None = None,
) -> dict[str, Any]:
    """Load weights into ``model`` from a published or tlc-probe checkpoint.

    Unwraps ``params`` / ``params_ema`` / ``state_dict`` / ``model`` (or ``key``), strips
    ``module.``; with ``strict`` a mismatch raises one ``ValueError`` listing the first
    missing, unexpected and shape-mismatched keys with their counts. Returns the metadata
    (empty for foreign checkpoints); its ``train_size`` is what :func:`tlc_probe.convert`
    needs.
    """
    sd, meta = read_checkpoint(source, key)
    report = _mismatch_report(model, sd)
    if report and strict:
        raise ValueError(f"checkpoint does not fit {type(model).__name__}: {report}")
    if not strict:  # load what fits; shape mismatches would still fail in torch
        own = model.state_dict()
        sd = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(sd, strict=strict)
    return meta


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **meta: Any) -> Path:
    """Write ``model``'s weights and metadata atomically (temporary file, then rename).

    Metadata: the model's ``zoo`` info (name, preset, task, train_size, config) when it
    was built by :func:`~tlc_probe.models.build`, updated by ``meta`` (e.g.
    ``iterations=``, ``seed=``, ``train_size=``). The weights sit under ``params``, as
    BasicSR's, so other tools read them too. Returns the path.
    """
    info = {**getattr(model, "zoo", {}), **meta}
    if isinstance(info.get("train_size"), tuple):
        info["train_size"] = list(info["train_size"])
    payload = {
        "format": FORMAT,
        "meta": info,
        "params": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    return atomic_save(payload, path)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically
    (:func:`~tlc_probe.store.atomic.atomic_write`). Returns the path."""
    return atomic_write(path, lambda p: torch.save(obj, p))


def model_label(meta: dict[str, Any]) -> str:
    """``<name>-<preset>`` of a tlc-probe checkpoint's metadata (e.g. ``hinet-tiny``), the
    ``model`` value of statistics and tables."""
    return f"{meta['name']}-{meta.get('preset', 'tiny')}"


def build_from_checkpoint(
    path: str | os.PathLike,
    *,
    task: str | None = None,
    train_size: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights.

    A tlc-probe checkpoint names its zoo model and config in its metadata. Any other
    checkpoint is handed to spandrel (:func:`tlc_probe.models.foreign.load_with_spandrel`;
    the optional extra ``tlc-probe[spandrel]``), which detects the architecture from the
    state dict; ``task`` and ``train_size`` then come from the caller.

    Returns:
        (model in eval mode, metadata: name, preset, task, train_size, config,
        iterations, ... for tlc-probe checkpoints; name (architecture id, lower case),
        preset 'spandrel', architecture, task, train_size for spandrel's).

    Raises:
        ValueError: a foreign checkpoint without ``task`` / ``train_size``, or one
            spandrel does not recognise; a ``task`` / ``train_size`` that contradicts a
            tlc-probe checkpoint's metadata. ImportError: spandrel is not installed.
    """
    sd, meta = read_checkpoint(path)
    given = {k: v for k, v in (("task", task), ("train_size", train_size)) if v is not None}
    if "name" in meta:
        if clash := {k: (v, meta[k]) for k, v in given.items() if k in meta and meta[k] != v}:
            said = ", ".join(f"{k} {v} (it records {m})" for k, (v, m) in clash.items())
            raise ValueError(f"{path} is a tlc-probe checkpoint: {said}")
        model = build(meta["name"], meta.get("preset", "tiny"), **meta.get("config", {}))
        load_checkpoint(model, sd)
        return model.eval(), {**given, **meta}
    if missing := [k for k in ("task", "train_size") if k not in given]:
        raise ValueError(
            f"{path} carries no tlc-probe metadata: give its {' and '.join(missing)} "
            "(--task, --train-size); its architecture is detected by spandrel"
        )
    from ..models.foreign import load_with_spandrel

    try:
        model, info = load_with_spandrel(sd)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return model, {**info, **given}
