"""Colour photographs that scikit-image ships inside its wheel (no download at run time)."""

from __future__ import annotations

import numpy as np
import torch

#: name -> (skimage.data function, index into its result or None)
_SOURCES: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None),
    "coffee": ("coffee", None),
    "chelsea": ("chelsea", None),
    "rocket": ("rocket", None),
    "motorcycle_left": ("stereo_motorcycle", 0),
    "motorcycle_right": ("stereo_motorcycle", 1),
}
BUNDLED_PHOTOS: tuple[str, ...] = tuple(_SOURCES)


def load_photo(name: str) -> torch.Tensor:
    """One bundled photo as a (3, H, W) float32 tensor in [0, 1].

    ``name`` is one of :data:`BUNDLED_PHOTOS` (astronaut 512x512, coffee 400x600,
    chelsea 300x451, rocket 427x640, motorcycle_left/right 500x741).
    """
    if name not in _SOURCES:
        raise ValueError(f"unknown photo {name!r}; bundled photos are {list(BUNDLED_PHOTOS)}")
    import skimage.data

    func, index = _SOURCES[name]
    img = getattr(skimage.data, func)()
    if index is not None:
        img = img[index]
    arr = np.ascontiguousarray(img[..., :3], dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
