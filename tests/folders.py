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


def gopro_folder(
    root: Path, h: int, w: int, sequences: int = 2, frames: int = 2, train: bool = True
) -> Path:
    """A GoPro-layout folder: ``root/test/<seq>/{blur,sharp}/<frame>.png`` for
    ``sequences`` sequences of ``frames`` frames of ``h`` x ``w`` (and the same under
    ``root/train`` when ``train``). Sharp frames are smooth random colour fields, blurred
    ones a horizontal box blur of them (seeded: the same folder every time)."""
    rng = np.random.default_rng(1)
    for split in ("test", "train") if train else ("test",):
        for s in range(sequences):
            seq = root / split / f"GOPR{s:04d}_11_00"
            for sub in ("blur", "sharp"):
                (seq / sub).mkdir(parents=True)
            for f in range(frames):
                coarse = rng.random((h // 8 + 2, w // 8 + 2, 3))
                sharp = np.kron(coarse, np.ones((8, 8, 1)))[:h, :w]
                sharp = 0.7 * sharp + 0.3 * rng.random((h, w, 3))
                blur = sum(np.roll(sharp, k, axis=1) for k in range(-3, 4)) / 7
                for sub, a in (("sharp", sharp), ("blur", blur)):
                    img = (np.clip(a, 0, 1) * 255).astype(np.uint8)
                    path = seq / sub / f"{f:06d}.png"
                    skimage.io.imsave(str(path), img, check_contrast=False)
    return root
