"""Metrics, numbers in and numbers out (no I/O): image quality (PSNR, SSIM, seam index),
distribution shift between regimes (W1, KL / JS, tables, summary) and its decomposition
into content, context and aggregation."""

from .decomposition import DECOMPOSITION_COLUMNS, RELIED_DB, decomposition
from .image import psnr, seam_index, ssim
from .shift import COMPARISONS, SHIFT_COLUMNS, comparisons_for, kl_js, shift_table, summary, w1

__all__ = [
    "COMPARISONS",
    "DECOMPOSITION_COLUMNS",
    "RELIED_DB",
    "comparisons_for",
    "decomposition",
    "SHIFT_COLUMNS",
    "kl_js",
    "psnr",
    "seam_index",
    "shift_table",
    "ssim",
    "summary",
    "w1",
]
