"""Input data: the photographs bundled with scikit-image (more with the datasets issue)."""

from .photos import BUNDLED_PHOTOS, load_photo

__all__ = ["BUNDLED_PHOTOS", "load_photo"]
