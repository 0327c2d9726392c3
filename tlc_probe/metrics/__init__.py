"""Metrics, numbers in and numbers out (no I/O): image quality (PSNR, SSIM, seam index),
distribution shift between regimes (W1, KL / JS, tables, summary) and its decomposition
into content, context and aggregation."""

from .decomposition import DECOMPOSITION_COLUMNS, RELIED_DB, decomposition, relied_on
from .image import psnr, seam_index, ssim
from .shift import (
    COMPARISONS,
    SHIFT_COLUMNS,
    comparisons_for,
    concat_shift_tables,
    kl_js,
    shift_table,
    summary,
    w1,
)

__all__ = [
    "COMPARISONS",
    "DECOMPOSITION_COLUMNS",
    "RELIED_DB",
    "relied_on",
    "comparisons_for",
    "concat_shift_tables",
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
