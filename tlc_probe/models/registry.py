"""Name -> model constructor, with the presets each published network comes in."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from torch import nn

#: zoo name -> (module under tlc_probe.models, class name)
_ZOO: dict[str, tuple[str, str]] = {
    "hinet": ("hinet", "HINet"),
    "mprnet": ("mprnet", "MPRNet"),
    "nafnet": ("nafnet", "NAFNet"),
    "ffanet": ("ffanet", "FFANet"),
    "restormer": ("restormer", "Restormer"),
    "spdnet": ("spdnet", "Rainnet"),
}


def _module(name: str) -> ModuleType:
    if name not in _ZOO:
        raise ValueError(f"unknown model {name!r}; available: {sorted(_ZOO)}")
    return importlib.import_module(f"{__package__}.{_ZOO[name][0]}")


def _pad_multiple(mod: ModuleType, config: dict[str, Any]) -> int:
    pad = mod.PAD_MULTIPLE
    return int(pad(**config) if callable(pad) else pad)


def available() -> dict[str, dict[str, Any]]:
    """Every zoo model: ``{name: {"class", "task", "presets": {preset: {"train_size",
    "pad_multiple", "config"}}}}``."""
    out = {}
    for name in _ZOO:
        mod = _module(name)
        out[name] = {
            "class": _ZOO[name][1],
            "task": mod.TASK,
            "presets": {
                preset: {
                    "train_size": mod.TRAIN_SIZE[preset],
                    "pad_multiple": _pad_multiple(mod, cfg),
                    "config": dict(cfg),
                }
                for preset, cfg in mod.PRESETS.items()
            },
        }
    return out


def build(name: str, preset: str = "tiny", **overrides: Any) -> nn.Module:
    """Instantiate zoo model ``name`` with ``preset``'s constructor kwargs, updated by
    ``overrides``.

    The model carries ``model.zoo = {"name", "preset", "task", "train_size", "config"}``
    (plain data), which :func:`~tlc_probe.store.checkpoint.save_checkpoint` stores so a
    checkpoint can rebuild its model. Its ``forward`` maps (N, 3, H, W) -> (N, 3, H, W)
    for any H, W >= 1.
    """
    mod = _module(name)
    if preset not in mod.PRESETS:
        raise ValueError(f"{name} has no preset {preset!r}; presets: {sorted(mod.PRESETS)}")
    config = {**mod.PRESETS[preset], **overrides}
    model = getattr(mod, _ZOO[name][1])(**config)
    model.zoo = {
        "name": name,
        "preset": preset,
        "task": mod.TASK,
        "train_size": mod.TRAIN_SIZE[preset],
        "config": config,
    }
    return model
