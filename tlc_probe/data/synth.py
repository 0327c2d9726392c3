"""Synthetic degradations of clean photos, deterministic from a seed.

All functions take a clean (3, H, W) float tensor in [0, 1] and return the degraded
image of the same shape, clipped to [0, 1]. Every random choice comes from a
``numpy.random.Generator`` seeded by ``seed``, so a (photo, seed) pair always gives the
same image.

* :func:`motion_blur` — GoPro-like camera shake: several kernels from random inertial
  trajectories (Boracchi & Foi 2012 style), each applied to the whole frame in linear
  light (gamma 2.2), blended with smooth spatial weights, so the blur varies across the
  frame as real non-uniform blur does.
* :func:`rain_streaks` — Rain100L/H style: sparse noise, a small blur, smeared by a line
  kernel of random length and angle, added and clipped; one or several layers.
* :func:`haze` — atmospheric scattering I = J t + A (1 - t), t = exp(-beta d), with a
  normalised depth d in [0, 1] (the motorcycle disparity, or a smooth synthetic ramp).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

GAMMA = 2.2
#: Ranges the random parameters are drawn from (uniformly).
BLUR_KERNEL_MAX = 25  # pixels, the kernel support
BLUR_KERNELS = 4  # kernels blended across the frame
RAIN_LENGTH = (12, 36)  # streak length, pixels
RAIN_ANGLE = (-30.0, 30.0)  # degrees from vertical
RAIN_DENSITY = (0.002, 0.008)  # fraction of pixels seeding a streak, per layer
HAZE_BETA = (0.8, 2.0)  # scattering coefficient for depth normalised to [0, 1]
HAZE_A = (0.75, 1.0)  # atmospheric light


def _check(img: torch.Tensor) -> None:
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {tuple(img.shape)}")
    if img.numel() == 0:
        raise ValueError("empty image")


def shake_kernel(rng: np.random.Generator, size: int = BLUR_KERNEL_MAX) -> np.ndarray:
    """One camera-shake kernel: (size, size) float64, non-negative, summing to 1.

    An inertial random walk in the plane: the velocity is pulled towards a random drift,
    shaken by Gaussian noise, and with small probability kicked by a large jerk; the path
    is scaled to a random extent of 30-100 % of the support and splatted bilinearly.
    """
    steps = 200
    v = np.exp(1j * rng.uniform(0, 2 * np.pi))
    pos = np.zeros(steps, dtype=complex)
    for t in range(1, steps):
        jerk = rng.random() < 0.02
        noise = rng.normal() + 1j * rng.normal()
        v = 0.9 * v + 0.25 * noise + (2.0 * noise if jerk else 0)
        pos[t] = pos[t - 1] + v / steps
    pos -= pos.mean()
    extent = max(np.abs(pos.real).max(), np.abs(pos.imag).max(), 1e-9)
    pos *= rng.uniform(0.3, 1.0) * (size - 1) / 2 / extent
    k = np.zeros((size, size))
    ys, xs = pos.imag + (size - 1) / 2, pos.real + (size - 1) / 2
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    for dy, dx, w in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(k, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), w)
    return k / k.sum()


def _filter(img: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Correlate each channel of a (3, H, W) image with ``kernel`` (replicate borders)."""
    k = torch.as_tensor(kernel, dtype=img.dtype)
    kh, kw = k.shape
    x = F.pad(img[None], (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2), mode="replicate")
    return F.conv2d(x, k.expand(3, 1, kh, kw), groups=3)[0]


def motion_blur(img: torch.Tensor, seed: int, n_kernels: int = BLUR_KERNELS) -> torch.Tensor:
    """Spatially varying camera-shake blur of a (3, H, W) image in [0, 1] (same shape).

    ``n_kernels`` kernels (:func:`shake_kernel`) sit at random anchors; each pixel mixes
    the frames blurred by each kernel with Gaussian weights of its distance to the anchors
    (width 0.35 of the image diagonal), normalised to sum to 1. Blurring is done in linear
    light: (img ** 2.2) is blurred, then raised to 1 / 2.2.
    """
    _check(img)
    rng = np.random.default_rng(seed)
    _, h, w = img.shape
    lin = img.clamp(0, 1) ** GAMMA
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij"
    )
    sigma = 0.35 * math.hypot(h, w)
    weights, blurred = [], []
    for _ in range(n_kernels):
        ay, ax = rng.uniform(0, h), rng.uniform(0, w)
        weights.append(torch.exp(-((yy - ay) ** 2 + (xx - ax) ** 2) / (2 * sigma**2)))
        blurred.append(_filter(lin, shake_kernel(rng)))
    wsum = torch.stack(weights).sum(0)
    out = sum(wk / wsum * bk for wk, bk in zip(weights, blurred, strict=True))
    return out.clamp(0, 1) ** (1 / GAMMA)


def _line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised anti-aliased line of ``length`` px at ``angle_deg`` from vertical."""
    size = length | 1
    k = np.zeros((size, size))
    c = (size - 1) / 2
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length)
    a = math.radians(angle_deg)
    ys, xs = c + t * math.cos(a), c + t * math.sin(a)
    np.add.at(
        k,
        (
            np.clip(np.round(ys).astype(int), 0, size - 1),
            np.clip(np.round(xs).astype(int), 0, size - 1),
        ),
        1.0,
    )
    return k / k.sum()


def rain_streaks(img: torch.Tensor, seed: int, layers: int = 2) -> torch.Tensor:
    """Add ``layers`` layers of rain streaks to a (3, H, W) image in [0, 1] (same shape).

    Per layer: sparse uniform noise (density in :data:`RAIN_DENSITY`), a 3x3 blur, a line
    kernel of length in :data:`RAIN_LENGTH` at an angle in :data:`RAIN_ANGLE`, scaled so
    the brightest streaks reach 0.6-0.9, then added (grey) to the image and clipped.
    """
    _check(img)
    rng = np.random.default_rng(seed)
    _, h, w = img.shape
    out = img.clone()
    angle = rng.uniform(*RAIN_ANGLE)
    for _ in range(layers):
        seeds = (rng.random((h, w)) < rng.uniform(*RAIN_DENSITY)).astype(np.float64)
        seeds *= rng.uniform(0.5, 1.0, size=(h, w))
        noise = torch.as_tensor(seeds, dtype=img.dtype).expand(3, h, w)
        noise = _filter(noise, np.full((3, 3), 1 / 9))
        streaks = _filter(
            noise, _line_kernel(int(rng.integers(*RAIN_LENGTH)), angle + rng.normal(0, 3))
        )
        streaks = streaks / streaks.max().clamp(min=1e-8) * rng.uniform(0.6, 0.9)
        out = out + streaks
    return out.clamp(0, 1)


def synthetic_depth(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth (H, W) depth in [0, 1]: a ramp growing towards a random top direction plus
    low-frequency bumps (a coarse random grid, bicubically upsampled)."""
    rng = np.random.default_rng(seed)
    yy, xx = torch.meshgrid(torch.linspace(1, 0, h), torch.linspace(-1, 1, w), indexing="ij")
    tilt = rng.uniform(-0.4, 0.4)
    ramp = yy + tilt * xx
    bumps = torch.as_tensor(rng.normal(0, 0.15, size=(1, 1, 4, 6)), dtype=torch.float32)
    ramp = ramp + F.interpolate(bumps, size=(h, w), mode="bicubic", align_corners=True)[0, 0]
    return (ramp - ramp.min()) / (ramp.max() - ramp.min()).clamp(min=1e-8)


def haze(img: torch.Tensor, seed: int, depth: torch.Tensor | None = None) -> torch.Tensor:
    """Hazy version of a (3, H, W) image in [0, 1] by the atmospheric scattering model.

    ``depth``: (H, W) in [0, 1] (far = 1); by default :func:`synthetic_depth`. beta is drawn
    from :data:`HAZE_BETA`, the atmospheric light A (grey, slightly bluish) from
    :data:`HAZE_A`. Returns J t + A (1 - t), t = exp(-beta d), clipped to [0, 1].
    """
    _check(img)
    rng = np.random.default_rng(seed)
    _, h, w = img.shape
    d = synthetic_depth(h, w, seed + 1) if depth is None else depth
    if d.shape != (h, w):
        raise ValueError(f"depth of shape {tuple(d.shape)} does not match the image {(h, w)}")
    beta, a = rng.uniform(*HAZE_BETA), rng.uniform(*HAZE_A)
    airlight = torch.tensor([a * 0.97, a * 0.99, a], dtype=img.dtype)[:, None, None]
    t = torch.exp(-beta * d.to(img.dtype))[None]
    return (img * t + airlight * (1 - t)).clamp(0, 1)


TASKS = ("deblur", "derain", "dehaze")


def degrade(task: str, img: torch.Tensor, seed: int, depth: torch.Tensor | None = None):
    """The degraded input for ``task`` ('deblur', 'derain', 'dehaze') of a clean (3, H, W)
    image; ``depth`` is used by 'dehaze' only."""
    if task == "deblur":
        return motion_blur(img, seed)
    if task == "derain":
        return rain_streaks(img, seed)
    if task == "dehaze":
        return haze(img, seed, depth)
    raise ValueError(f"unknown task {task!r}; tasks: {TASKS}")
