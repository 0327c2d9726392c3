"""The model zoo (HINet, MPRNet, NAFNet, FFA-Net), its registry and checkpoint I/O, and
the toy network the converter demo runs on."""

from .checkpoint import (
    build_from_checkpoint,
    load_checkpoint,
    model_label,
    read_checkpoint,
    save_checkpoint,
)
from .registry import available, build
from .toy import CALayer, HalfIN, ToyNet

__all__ = [
    "CALayer",
    "HalfIN",
    "ToyNet",
    "available",
    "build",
    "build_from_checkpoint",
    "load_checkpoint",
    "model_label",
    "read_checkpoint",
    "save_checkpoint",
]
