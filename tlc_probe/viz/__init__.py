"""Figures from data only (tidy frames, shift tables, tensors): never a checkpoint path,
never a model. Every function returns a :class:`matplotlib.figure.Figure`; writing one
to disk is :func:`tlc_probe.store.figures.save_figure`."""

from .decomposition import decomposition_figure
from .images import degradations_figure, qualitative_figure
from .schemes import seam_crops_figure, sweep_figure
from .stats import REGIME_COLOURS, choose_site, depth_profile, fig_a3, heatmap
from .training import training_dynamics
from .tune import tune_figure

__all__ = [
    "REGIME_COLOURS",
    "choose_site",
    "decomposition_figure",
    "degradations_figure",
    "depth_profile",
    "fig_a3",
    "heatmap",
    "qualitative_figure",
    "seam_crops_figure",
    "sweep_figure",
    "training_dynamics",
    "tune_figure",
]
