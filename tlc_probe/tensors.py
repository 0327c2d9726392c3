"""Small facts about tensors and modules that every layer asks: is this a feature map,
where and in what dtype does a model compute."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def check_map(x: torch.Tensor, what: str = "input") -> None:
    """Raise ``ValueError`` unless ``x`` is a non-empty 4-D (N, C, H, W) tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what} must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{what} is empty (zero-sized map), got shape {tuple(x.shape)}")


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of ``model``'s first floating parameter or buffer;
    (cpu, float32) for a model without any."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def to_model(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` moved to ``model``'s device and floating dtype (:func:`model_device_dtype`)."""
    device, dtype = model_device_dtype(model)
    return x.to(device=device, dtype=dtype)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; afterwards every submodule gets back its
    own mode (a frozen BatchNorm in a training model stays in eval mode)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training


def channels_last_on_cpu(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D weights laid out channels last (in place; returned), when
    every parameter is on the CPU and it has a 2-D convolution; else unchanged.

    oneDNN runs a convolution on a channels-last map without reordering it into its
    blocked layout and back, and a model whose weights are channels last turns the
    first map it convolves into one, so every later map stays so: the tiny checkpoints
    run 1.3-2x faster at 360 x 640 on a 2-core CPU. The numbers are those of the default
    layout up to float rounding (the order of the additions of each convolution; at most
    ~1e-6 on their outputs)."""
    params = list(model.parameters())
    if not params or any(p.device.type != "cpu" for p in params):
        return model
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return model
    return model.to(memory_format=torch.channels_last)


def to_device(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` moved to ``device`` (in place; returned). Off the CPU its 4-D weights get
    PyTorch's default layout back (:func:`channels_last_on_cpu` is a CPU choice; other
    backends pick their own)."""
    device = torch.device(device)
    model = model.to(device)
    if device.type != "cpu":
        model = model.to(memory_format=torch.contiguous_format)
    return model


#: Pixels of one forward pass of crops or tiles on a CPU (4 tiles of 128 x 128). Larger
#: batches run slower per pixel there (their maps leave the cache): on this 2-core
#: machine the shipped models ran 16 tiles of 128 x 128 1.3-3.2x slower per tile than 4,
#: and 4 within 1.3x of the best batch of each.
BATCH_PIXELS = 1 << 16
#: The same off the CPU, where larger batches pay (16 tiles of 256 x 256).
DEVICE_BATCH_PIXELS = 1 << 20


def batch_pixels(device: torch.device | str) -> int:
    """Pixels of one forward pass of crops or tiles for a model on ``device``:
    :data:`BATCH_PIXELS` on a CPU, :data:`DEVICE_BATCH_PIXELS` elsewhere."""
    return BATCH_PIXELS if torch.device(device).type == "cpu" else DEVICE_BATCH_PIXELS


def pixel_batches(
    x: torch.Tensor, device: torch.device | str | None = None, pixels: int | None = None
) -> tuple[torch.Tensor, ...]:
    """``x`` (N, C, H, W) as consecutive batches (views along N) for the forward passes
    of a model on ``device`` (default ``x``'s): at most ``pixels`` pixels each (default
    :func:`batch_pixels` of the device), at least one sample. A speed choice only: each
    sample's output does not depend on the batch it runs in (up to float rounding)."""
    budget = pixels if pixels is not None else batch_pixels(device or x.device)
    per = max(1, budget // max(1, x.shape[-2] * x.shape[-1]))
    return x.split(per)
