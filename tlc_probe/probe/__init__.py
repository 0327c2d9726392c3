"""The probe: forward hooks that record the statistics each global-aggregation site
aggregates, returned as tidy records."""

from ..tlc.window import grid_starts
from .hooks import Probe
from .records import RECORD_COLUMNS, RECORD_SCHEMA
from .windows import Window, training_windows, window_starts, window_stats

__all__ = [
    "RECORD_COLUMNS",
    "RECORD_SCHEMA",
    "Probe",
    "Window",
    "grid_starts",
    "training_windows",
    "window_starts",
    "window_stats",
]
