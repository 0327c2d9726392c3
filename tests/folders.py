"""Data folders the tests write: paired image folders in the ``pairs`` layout."""

from pathlib import Path

import numpy as np
import skimage.io


def pairs_folder(root: Path, n: int, h: int, w: int) -> Path:
    """``root/input`` and ``root/target`` with ``n`` equal random ``h`` x ``w`` RGB PNGs
    (seed 0) named ``000.png`` ...; returns ``root``."""
    rng = np.random.default_rng(0)
    for sub in ("input", "target"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        a = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        for sub in ("input", "target"):
            skimage.io.imsave(str(root / sub / f"{i:03d}.png"), a, check_contrast=False)
    return root
