"""Test-time local conversion: box means, local pooling / instance norm / linear SE /
channel attention, the converter."""

from .attention import LocalChannelAttention
from .box import box_mean, box_mean_fast, fast_error_bound, fast_stride
from .convert import convert, tlc_windows
from .norm import LocalInstanceNorm2d
from .plan import Plan
from .pooling import LocalAvgPool2d
from .se import LocalLinearSE

__all__ = [
    "LocalAvgPool2d",
    "LocalChannelAttention",
    "LocalInstanceNorm2d",
    "LocalLinearSE",
    "Plan",
    "box_mean",
    "box_mean_fast",
    "convert",
    "fast_error_bound",
    "fast_stride",
    "tlc_windows",
]
