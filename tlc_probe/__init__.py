"""tlc-probe: global-statistics drift between patch training and whole-image inference.

Public API (re-exports only).
"""

from importlib.metadata import PackageNotFoundError, version

from .probe import Probe, find_sites
from .shift import shift_table, summary
from .store import read_stats
from .tiling import tile_starts, tiled_inference
from .tlc import (
    LocalAvgPool2d,
    LocalInstanceNorm2d,
    convert,
    global_sites,
    site_kind,
    tlc_sites,
)

try:
    __version__ = version("tlc-probe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "LocalAvgPool2d",
    "LocalInstanceNorm2d",
    "Probe",
    "__version__",
    "convert",
    "find_sites",
    "global_sites",
    "read_stats",
    "shift_table",
    "site_kind",
    "summary",
    "tile_starts",
    "tiled_inference",
    "tlc_sites",
]
