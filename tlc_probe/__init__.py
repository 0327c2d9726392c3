"""tlc-probe: global-statistics drift between patch training and whole-image inference.

Public API (re-exports only). The layers, bottom to top, are described in
``docs/ARCHITECTURE.md``.
"""

from ._version import __version__
from .explore import StatsSource
from .functional import attach_functional_sites, find_sites
from .jobs.reproduce import reproduce
from .metrics import decomposition, shift_table, summary
from .probe import Probe, training_windows
from .schemes import Scheme, make_schemes
from .sites import Site, execution_order, list_sites, site_kind
from .store import read_stats, shipped_checkpoints
from .tiling import tile_starts, tiled_inference
from .tlc import (
    LocalAvgPool2d,
    LocalChannelAttention,
    LocalInstanceNorm2d,
    LocalLinearSE,
    convert,
    tlc_windows,
)

__all__ = [
    "LocalAvgPool2d",
    "LocalChannelAttention",
    "LocalInstanceNorm2d",
    "LocalLinearSE",
    "Probe",
    "Scheme",
    "Site",
    "StatsSource",
    "__version__",
    "attach_functional_sites",
    "convert",
    "decomposition",
    "execution_order",
    "find_sites",
    "list_sites",
    "make_schemes",
    "read_stats",
    "reproduce",
    "shift_table",
    "shipped_checkpoints",
    "site_kind",
    "summary",
    "tile_starts",
    "tiled_inference",
    "tlc_windows",
    "training_windows",
]
