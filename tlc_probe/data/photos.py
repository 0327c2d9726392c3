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

#: Fixed split by photo: no crop of a test photo is ever seen in training. The two
#: motorcycle views show one scene, so both are test photos (with rocket's sky gradient,
#: the largest and most non-uniform frames: where whole-image statistics differ most).
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "coffee", "chelsea"),
    "test": ("rocket", "motorcycle_left", "motorcycle_right"),
}


def photo_names(split: str) -> tuple[str, ...]:
    """Bundled photo names of ``split`` ('train' or 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {sorted(SPLITS)}")
    return SPLITS[split]


def load_depth(name: str) -> torch.Tensor | None:
    """Normalised depth (H, W) in [0, 1] (far = 1) for photos with measured depth — the
    motorcycle views, from the Middlebury disparity (depth ~ 1 / disparity; pixels
    without disparity take the farthest depth) — else ``None``. The disparity is given for
    the left view; the right view uses it too (same scene, a few pixels' shift)."""
    if not name.startswith("motorcycle"):
        if name not in _SOURCES:
            raise ValueError(f"unknown photo {name!r}; bundled photos are {list(BUNDLED_PHOTOS)}")
        return None
    import skimage.data

    disp = np.asarray(skimage.data.stereo_motorcycle()[2], dtype=np.float64)
    valid = np.isfinite(disp) & (disp > 0)
    depth = np.full(disp.shape, np.nan)
    depth[valid] = 1.0 / disp[valid]
    lo, hi = np.nanmin(depth), np.nanmax(depth)
    depth = np.where(valid, (depth - lo) / (hi - lo), 1.0)
    return torch.from_numpy(depth.astype(np.float32))


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
