"""Test-time local conversion: local pooling / instance norm and the model converter."""

from .box import box_mean, box_mean_fast, fast_error_bound, fast_stride
from .convert import SITE_KINDS, Site, convert, global_sites, site_kind, tlc_sites
from .norm import LocalInstanceNorm2d
from .pooling import LocalAvgPool2d

__all__ = [
    "SITE_KINDS",
    "LocalAvgPool2d",
    "LocalInstanceNorm2d",
    "Site",
    "box_mean",
    "box_mean_fast",
    "convert",
    "fast_error_bound",
    "fast_stride",
    "global_sites",
    "site_kind",
    "tlc_sites",
]
