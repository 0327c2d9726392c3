"""The probe: find global-aggregation sites, record their statistics, run the regimes."""

from .hooks import COLUMNS, Probe, grid_starts
from .sites import ProbeSite, find_sites, parse_depths, select_sites

__all__ = [
    "COLUMNS",
    "Probe",
    "ProbeSite",
    "find_sites",
    "grid_starts",
    "parse_depths",
    "select_sites",
]
