"""The probe: forward hooks that record the statistics each global-aggregation site
aggregates, returned as tidy records."""

from .hooks import Probe, grid_starts
from .records import RECORD_COLUMNS, RECORD_SCHEMA

__all__ = ["RECORD_COLUMNS", "RECORD_SCHEMA", "Probe", "grid_starts"]
