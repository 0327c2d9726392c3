"""Synthetic degradations and the photo split."""

import numpy as np
import pytest
import torch

from tlc_probe.data import (
    BUNDLED_PHOTOS,
    SPLITS,
    degrade,
    haze,
    load_depth,
    load_photo,
    motion_blur,
    photo_names,
    rain_streaks,
)
from tlc_probe.data.synth import TASKS, shake_kernel


@pytest.fixture(scope="module")
def photo():
    return load_photo("chelsea")[:, :160, :224].contiguous()


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_in_range_and_not_identity(photo, task):
    a, b = degrade(task, photo, seed=5), degrade(task, photo, seed=5)
    assert torch.equal(a, b)
    assert a.shape == photo.shape and a.dtype == photo.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert float((a - photo).abs().mean()) > 0.005
    assert not torch.equal(a, degrade(task, photo, seed=6))


def test_shake_kernel_is_a_normalised_path():
    for seed in range(5):
        k = shake_kernel(np.random.default_rng(seed))
        assert k.shape == (25, 25) and (k >= 0).all()
        assert abs(k.sum() - 1) < 1e-12
        assert (k > 1e-3).sum() >= 5  # a path, not a dot


def test_motion_blur_keeps_flat_images_and_varies_across_the_frame():
    flat = torch.full((3, 64, 96), 0.4)
    assert torch.allclose(motion_blur(flat, seed=1), flat, atol=1e-5)
    # Dots on a dark background: the blur of a dot near the top-left corner and of one
    # near the bottom-right differ (several kernels, blended by position).
    img = torch.zeros(3, 256, 256)
    img[:, 30, 30] = img[:, 225, 225] = 1.0
    out = motion_blur(img, seed=2) ** 2.2
    psf_a = out[0, 30 - 12 : 30 + 13, 30 - 12 : 30 + 13]
    psf_b = out[0, 225 - 12 : 225 + 13, 225 - 12 : 225 + 13]
    psf_a, psf_b = psf_a / psf_a.sum(), psf_b / psf_b.sum()
    assert float((psf_a - psf_b).abs().sum()) > 0.2


def test_rain_adds_near_vertical_streaks():
    dark = torch.zeros(3, 128, 128)
    out = rain_streaks(dark, seed=3)
    assert (out >= dark).all() and float(out.mean()) > 0.002
    gx = (out[0, :, 1:] - out[0, :, :-1]).abs().mean()
    gy = (out[0, 1:, :] - out[0, :-1, :]).abs().mean()
    assert gx > 1.5 * gy  # streaks run within ~35 degrees of vertical


def test_haze_follows_the_scattering_model(photo):
    _, h, w = photo.shape
    assert torch.allclose(haze(photo, 0, depth=torch.zeros(h, w)), photo, atol=1e-6)
    far = torch.ones(h, w)
    out = haze(photo, 0, depth=far)
    # With a constant depth the model is affine: out = J t + A (1 - t) per channel, so a
    # least-squares fit of out on J recovers one t for all channels and A in HAZE_A.
    ts, airs = [], []
    for c in range(3):
        j, o = photo[c].flatten().double(), out[c].flatten().double()
        t, b = np.polyfit(j.numpy(), o.numpy(), 1)
        ts.append(t)
        airs.append(b / (1 - t))
    assert max(ts) - min(ts) < 1e-4 and np.exp(-2.0) - 1e-4 <= ts[0] <= np.exp(-0.8) + 1e-4
    assert all(0.7 <= a <= 1.0 for a in airs)
    with pytest.raises(ValueError, match="depth"):
        haze(photo, 0, depth=torch.zeros(3, 3))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown task"):
        degrade("denoise", torch.rand(3, 8, 8), 0)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        motion_blur(torch.rand(1, 3, 8, 8), 0)


def test_photo_split_is_fixed_and_disjoint():
    assert set(SPLITS["train"]).isdisjoint(SPLITS["test"])
    assert set(SPLITS["train"]) | set(SPLITS["test"]) == set(BUNDLED_PHOTOS)
    assert photo_names("test") == ("rocket", "motorcycle_left", "motorcycle_right")
    with pytest.raises(ValueError, match="split"):
        photo_names("val")


def test_depth_of_the_motorcycle_scene():
    d = load_depth("motorcycle_left")
    assert d.shape == load_photo("motorcycle_left").shape[-2:]
    assert float(d.min()) == 0.0 and float(d.max()) == 1.0
    assert load_depth("coffee") is None


def test_degradations_figure_has_the_four_panels():
    from tlc_probe.viz import degradations_figure

    img = load_photo("coffee")
    fig = degradations_figure(img, {t: degrade(t, img, 0) for t in ("deblur", "derain", "dehaze")})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["clean", "motion blur", "rain streaks", "haze"]
    assert all(len(ax.images) == 1 for ax in fig.axes)
