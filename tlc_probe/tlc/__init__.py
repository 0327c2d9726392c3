"""Test-time local conversion: box means, local pooling / instance norm, the converter."""

from .box import box_mean, box_mean_fast, fast_error_bound, fast_stride
from .convert import convert, tlc_windows
from .norm import LocalInstanceNorm2d
from .pooling import LocalAvgPool2d

__all__ = [
    "LocalAvgPool2d",
    "LocalInstanceNorm2d",
    "box_mean",
    "box_mean_fast",
    "convert",
    "fast_error_bound",
    "fast_stride",
    "tlc_windows",
]
