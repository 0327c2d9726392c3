"""Dead-leaves training images and their place in the training pool."""

import numpy as np
import pytest
import torch

from tlc_probe.data import DeadLeavesPairs, dead_leaves
from tlc_probe.data.deadleaves import ALPHA, _radii
from tlc_probe.jobs.collect import datasets_for


def test_deterministic_shape_range_and_seeded():
    a, b = dead_leaves((96, 128), seed=3), dead_leaves((96, 128), seed=3)
    assert torch.equal(a, b)
    assert a.shape == (3, 96, 128) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert not torch.equal(a, dead_leaves((96, 128), seed=4))
    with pytest.raises(ValueError, match="at least 8x8"):
        dead_leaves(4, seed=0)


def test_radii_follow_the_power_law():
    # density r^-3 on [1, 100]: P(r <= x) = (1 - x^-2) / (1 - 100^-2); check by quantiles
    r = _radii(np.random.default_rng(0), 200_000, 1.0, 100.0)
    assert ALPHA == 3.0 and r.min() >= 1.0 and r.max() <= 100.0
    for x in (1.2, 2.0, 5.0):
        expected = (1 - x**-2) / (1 - 100.0**-2)
        assert np.mean(r <= x) == pytest.approx(expected, abs=0.005)


def test_flat_discs_make_piecewise_constant_images_with_natural_spectrum():
    img = dead_leaves(256, seed=0, shading=0.0).numpy()
    # opaque flat discs: most pixels equal their right neighbour (edges are anti-aliased)
    same = np.all(np.isclose(img[:, :, 1:], img[:, :, :-1]), axis=0).mean()
    assert same > 0.5  # (uniform noise: 0)
    # scale invariance: the radially averaged power spectrum falls as about f^-2
    grey = img.mean(0) - img.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2
    yy, xx = np.indices(power.shape) - 128
    f = np.hypot(yy, xx).astype(int)
    band = np.arange(4, 64)
    radial = np.array([power[f == k].mean() for k in band])
    slope = np.polyfit(np.log(band), np.log(radial), 1)[0]
    assert -3.2 < slope < -1.5, slope


def test_pairs_are_degraded_dead_leaves_and_join_the_training_pool():
    pairs = DeadLeavesPairs("deblur", n=2, size=64, seed=1)
    item = pairs[1]
    assert item["id"] == "deadleaves#1" and item["input"].shape == (3, 64, 64)
    assert torch.equal(item["target"], dead_leaves(64, 1 * 100003 + 1))
    assert not torch.equal(item["input"], item["target"])
    with pytest.raises(IndexError):
        pairs[2]
    # the train regime of a checkpoint trained with dead leaves draws from the same pool
    train, _, _ = datasets_for(
        "deblur", train_config={"n_per_photo": 1, "seed": 0, "deadleaves": 2, "deadleaves_size": 64}
    )
    ids = [train[i]["id"] for i in range(len(train))]
    assert ids == ["astronaut#0", "coffee#0", "chelsea#0", "deadleaves#0", "deadleaves#1"]


def test_discs_left_out_early_have_no_free_pixel_in_their_box():
    from tlc_probe.data.deadleaves import _free_table, _may_show

    rng = np.random.default_rng(0)
    free = rng.random((40, 60)) < 0.02  # a nearly covered canvas: scattered free pixels
    centres = rng.random((3000, 2)) * (40, 60) + rng.normal(0, 3, (3000, 2))  # some outside
    radii = rng.uniform(0.2, 6.0, 3000)
    shows = _may_show(_free_table(free), centres, radii)
    for (cy, cx), r, s in zip(centres, radii, shows, strict=True):
        # the drawing loop's box, brute force
        y0, y1 = max(0, int(cy - r)), min(40, int(np.ceil(cy + r)) + 1)
        x0, x1 = max(0, int(cx - r)), min(60, int(np.ceil(cx + r)) + 1)
        box_free = y0 < y1 and x0 < x1 and free[y0:y1, x0:x1].any()
        assert s == box_free
    assert 0 < shows.sum() < len(shows)  # both cases occur
