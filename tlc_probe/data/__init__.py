"""Input data: the photographs bundled with scikit-image, dead-leaves images, and their
synthetic degradations."""

from .datasets import (
    DeadLeavesPairs,
    PairedFolder,
    SyntheticPairs,
    check_images,
    manifest,
    random_patches,
    read_image,
    synthetic_pairs,
    whole_images,
)
from .deadleaves import dead_leaves
from .photos import BUNDLED_PHOTOS, SPLITS, load_depth, load_photo, photo_names
from .synth import TASKS, degrade, haze, motion_blur, rain_streaks

__all__ = [
    "DeadLeavesPairs",
    "dead_leaves",
    "PairedFolder",
    "SyntheticPairs",
    "check_images",
    "manifest",
    "random_patches",
    "read_image",
    "synthetic_pairs",
    "whole_images",
    "BUNDLED_PHOTOS",
    "SPLITS",
    "TASKS",
    "degrade",
    "haze",
    "load_depth",
    "load_photo",
    "motion_blur",
    "photo_names",
    "rain_streaks",
]
