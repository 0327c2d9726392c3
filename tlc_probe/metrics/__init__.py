"""Metrics, numbers in and numbers out (no I/O): image quality (PSNR, SSIM, seam index)
and distribution shift between regimes (W1, KL / JS, tables, summary)."""

from .image import psnr, seam_index, ssim
from .shift import COMPARISONS, SHIFT_COLUMNS, kl_js, shift_table, summary, w1

__all__ = [
    "COMPARISONS",
    "SHIFT_COLUMNS",
    "kl_js",
    "psnr",
    "seam_index",
    "shift_table",
    "ssim",
    "summary",
    "w1",
]
