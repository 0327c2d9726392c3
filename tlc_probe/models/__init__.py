"""The model zoo (HINet, MPRNet, NAFNet, FFA-Net, Restormer, SPDNet) and its registry.
Checkpoint files are read and written by :mod:`tlc_probe.store.checkpoint`."""

from .registry import available, build

__all__ = ["available", "build"]
