"""Checkpoints of architectures outside the zoo, loaded through spandrel.

spandrel (MIT; the loader of chaiNNer and ComfyUI) detects an architecture from a state
dict and builds its *plain* model (e.g. ``NAFNet``, never ``NAFNetLocal``):
:func:`load_with_spandrel` gives that model to tlc-probe, which then converts and probes
it like a zoo model. It takes the state dict that
:func:`tlc_probe.store.read_checkpoint` read (``torch.load(weights_only=True)``;
``params`` / ``params_ema`` / ``state_dict`` wrappers removed) and hands it to
``ModelLoader().load_from_state_dict``: spandrel never opens the file.

spandrel is an optional extra (``pip install 'tlc-probe[spandrel]'``). spandrel 0.4
imports torchvision when it is imported (two architectures, LaMa and RestoreFormer, use
three of its functions), and PyPI's torchvision only runs beside PyPI's CUDA build of
torch. Where torchvision is not installed or does not import (a CPU-only torch),
:func:`import_spandrel`
imports spandrel with stand-ins for exactly those three names, which raise
``RuntimeError`` if they are ever called (so LaMa and RestoreFormer cannot run, every
other architecture is unaffected); the stand-ins are removed from ``sys.modules`` right
after the import, so nothing else sees a torchvision that is not there.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
import types
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EXTRA_HINT = "install the extra: pip install 'tlc-probe[spandrel]'"


class _InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _needs_torchvision(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("this spandrel architecture needs torchvision, which is not installed")


def _stand_ins() -> dict[str, types.ModuleType]:
    tv = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = _InterpolationMode
    functional.rotate = _needs_torchvision
    functional.normalize = _needs_torchvision
    tv.transforms, transforms.functional = transforms, functional
    return {m.__name__: m for m in (tv, transforms, functional)}


def _torchvision_usable() -> bool:
    """Whether torchvision imports (PyPI's CUDA build beside a CPU torch does not: its
    operators fail to register); a failed import leaves no trace in ``sys.modules``."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True


def import_spandrel() -> types.ModuleType:
    """The ``spandrel`` module (see the module docstring for torchvision). ``ImportError``
    saying how to install it when it is missing."""
    if importlib.util.find_spec("spandrel") is None:
        raise ImportError(f"loading a foreign checkpoint needs spandrel: {EXTRA_HINT}")
    if "spandrel" in sys.modules or _torchvision_usable():
        import spandrel

        return spandrel
    fakes = _stand_ins()
    sys.modules.update(fakes)
    try:
        import spandrel
    finally:
        for name in fakes:
            sys.modules.pop(name, None)
    return spandrel


def _pad_crop_hooks(model: nn.Module, multiple: int, minimum: int) -> None:
    """Pre-/post-hooks making ``model`` accept any (H, W): the input is padded (reflect,
    replicate where too small for reflect) to a multiple of ``multiple`` and at least
    ``minimum``, and the output cropped back to the input's size (times the scale)."""
    sizes: list[tuple[int, int]] = []

    def pad(_module, args):
        x = args[0]
        h, w = x.shape[-2:]
        th = max(minimum, -(-h // multiple) * multiple)
        tw = max(minimum, -(-w // multiple) * multiple)
        sizes.append((h, w))
        if (th, tw) == (h, w):
            return None
        mode = "reflect" if th - h < h and tw - w < w else "replicate"
        return (F.pad(x, (0, tw - w, 0, th - h), mode=mode), *args[1:])

    def crop(_module, args, out):
        h, w = sizes.pop()
        if not isinstance(out, torch.Tensor):
            return out
        s = out.shape[-2] // args[0].shape[-2] if args[0].shape[-2] else 1
        return out[..., : h * s, : w * s]

    model.register_forward_pre_hook(pad)
    model.register_forward_hook(crop, always_call=False)


def load_with_spandrel(state_dict: Mapping[str, torch.Tensor]) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model of a foreign checkpoint's state dict with spandrel.

    Args:
        state_dict: the weights (as :func:`tlc_probe.store.read_checkpoint` returns them).

    Returns:
        (model in eval mode, info): the model is spandrel's ``descriptor.model``, made to
        accept any input size (padded to ``size_requirements.multiple_of`` and
        ``minimum``, output cropped back); info = {"name": architecture id in lower case,
        "preset": "spandrel", "architecture", "scale", "multiple_of", "minimum"}.

    Raises:
        ImportError: spandrel is not installed (with the command that installs it).
        ValueError: spandrel does not recognise the state dict, or the model is not an
            image-to-image restoration model of scale 1 with 3 input / output channels.
    """
    spandrel = import_spandrel()
    try:
        desc = spandrel.ModelLoader().load_from_state_dict(dict(state_dict))
    except spandrel.UnsupportedModelError as e:
        keys = sorted(state_dict)
        said = str(e).strip() or "no architecture it knows has these keys"
        raise ValueError(
            f"spandrel does not recognise this checkpoint ({len(keys)} tensors, e.g. "
            f"{keys[:3]}): {said}; name its architecture with --model (model=) if it is "
            "one of the zoo's"
        ) from e
    arch = desc.architecture.id
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise ValueError(f"spandrel loads {arch} as a {type(desc).__name__}, not an image model")
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise ValueError(
            f"{arch} maps {desc.input_channels} to {desc.output_channels} channels; "
            "tlc-probe's test images are RGB"
        )
    if desc.scale != 1:
        raise ValueError(f"{arch} upscales x{desc.scale}; tlc-probe compares restorations")
    model = desc.model.eval()
    req = desc.size_requirements
    if req.multiple_of > 1 or req.minimum > 1:
        _pad_crop_hooks(model, max(1, req.multiple_of), max(1, req.minimum))
    info = {
        "name": str(arch).lower(),
        "preset": "spandrel",
        "architecture": str(arch),
        "scale": int(desc.scale),
        "multiple_of": int(req.multiple_of),
        "minimum": int(req.minimum),
    }
    return model, info
