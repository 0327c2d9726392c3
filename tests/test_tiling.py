"""tiled_inference against hand-listed tiles."""

import pytest
import torch
from torch import nn

from tlc_probe import tile_starts, tiled_inference


class TileMean(nn.Module):
    """Output depends on the tile: x + (mean of the tile per channel)."""

    def forward(self, x):
        return x + x.mean(dim=(-2, -1), keepdim=True)


@pytest.mark.parametrize(
    "shape,tile,overlap",
    [
        ((1, 3, 37, 53), 16, 4),
        ((2, 1, 64, 64), 32, 16),
        ((1, 2, 10, 90), 16, 15),
        ((3, 3, 5, 7), 16, 8),
        ((1, 1, 33, 17), (8, 12), (2, 11)),
    ],
)
def test_identity_model_returns_input_bit_for_bit(shape, tile, overlap):
    x = torch.rand(shape)
    assert torch.equal(tiled_inference(nn.Identity(), x, tile, overlap), x)


def test_one_tile_is_the_model_itself():
    model = TileMean()
    x = torch.randn(2, 3, 20, 24)
    assert torch.equal(tiled_inference(model, x, tile=24, overlap=8), model(x))
    assert torch.equal(tiled_inference(model, x, tile=64, overlap=8), model(x))


def test_overlaps_are_averaged():
    x = torch.randn(2, 2, 10, 7)
    # tile 4, overlap 2 on H=10: starts 0, 2, 4, 6; tile 4, overlap 1 on W=7: starts 0, 3.
    assert tile_starts(10, 4, 2) == [0, 2, 4, 6]
    assert tile_starts(7, 4, 1) == [0, 3]
    acc, cnt = torch.zeros_like(x, dtype=torch.float64), torch.zeros(10, 7, dtype=torch.float64)
    for y in (0, 2, 4, 6):
        for x0 in (0, 3):
            t = x[..., y : y + 4, x0 : x0 + 4].double()
            acc[..., y : y + 4, x0 : x0 + 4] += t + t.mean(dim=(-2, -1), keepdim=True)
            cnt[y : y + 4, x0 : x0 + 4] += 1
    got = tiled_inference(TileMean(), x, tile=4, overlap=(2, 1))
    assert torch.allclose(got.double(), acc / cnt, atol=1e-6)
    assert not torch.allclose(got, TileMean()(x), atol=1e-3)  # tiling matters here


def test_axis_shorter_than_tile_is_run_whole_along_it():
    x = torch.randn(1, 1, 6, 40)
    got = tiled_inference(TileMean(), x, tile=16, overlap=8)
    ref = torch.zeros_like(x, dtype=torch.float64)
    cnt = torch.zeros(40, dtype=torch.float64)
    for x0 in tile_starts(40, 16, 8):  # 0, 8, 16, 24
        t = x[..., :, x0 : x0 + 16].double()
        ref[..., x0 : x0 + 16] += t + t.mean(dim=(-2, -1), keepdim=True)
        cnt[x0 : x0 + 16] += 1
    assert tile_starts(40, 16, 8) == [0, 8, 16, 24]
    assert torch.allclose(got.double(), ref / cnt, atol=1e-6)


def test_tile_starts_cover_and_align_last_to_border():
    for n in range(1, 300, 7):
        for tile, overlap in [(64, 16), (64, 0), (32, 31)]:
            s = tile_starts(n, tile, overlap)
            assert s[0] == 0 and (s[-1] + tile == n or (n <= tile and s == [0]))
            assert all(b - a <= tile - overlap for a, b in zip(s, s[1:], strict=False))


def test_bad_input():
    x = torch.randn(1, 3, 20, 20)
    with pytest.raises(ValueError, match="overlap"):
        tiled_inference(nn.Identity(), x, tile=8, overlap=8)
    with pytest.raises(ValueError, match="4-D"):
        tiled_inference(nn.Identity(), torch.randn(3, 20, 20), tile=8, overlap=2)
    with pytest.raises(ValueError, match="empty"):
        tiled_inference(nn.Identity(), torch.randn(1, 3, 0, 20), tile=8, overlap=2)
    with pytest.raises(TypeError, match="one tensor"):
        tiled_inference(lambda t: (t, t), x, tile=8, overlap=2)
    with pytest.raises(ValueError, match="spatial size"):
        tiled_inference(lambda t: t[..., ::2, ::2], x, tile=8, overlap=2)


def test_tiles_share_forward_passes_up_to_the_pixel_budget(monkeypatch):
    from tlc_probe import tensors
    from tlc_probe.tensors import DEVICE_BATCH_PIXELS, batch_pixels, pixel_batches

    seen = []

    class Recording(TileMean):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return super().forward(x)

    x = torch.randn(2, 3, 20, 30)
    one_by_one = torch.zeros_like(x, dtype=torch.float64)
    cnt = torch.zeros(20, 30, dtype=torch.float64)
    for y in tile_starts(20, 8, 2):
        for x0 in tile_starts(30, 8, 2):
            t = x[..., y : y + 8, x0 : x0 + 8]
            one_by_one[..., y : y + 8, x0 : x0 + 8] += TileMean()(t).double()
            cnt[y : y + 8, x0 : x0 + 8] += 1
    monkeypatch.setattr(tensors, "BATCH_PIXELS", 3 * 2 * 64)  # three tiles of both images
    got = tiled_inference(Recording(), x, tile=8, overlap=2)
    n_tiles = len(tile_starts(20, 8, 2)) * len(tile_starts(30, 8, 2))  # 3 x 5
    assert seen == [(6, 3, 8, 8)] * (n_tiles // 3)
    assert torch.allclose(got.double(), one_by_one / cnt, atol=1e-6)
    # the split of a batch of crops: at most the budget, at least one sample
    crops = torch.rand(10, 3, 16, 16)
    assert [len(b) for b in pixel_batches(crops, pixels=1024)] == [4, 4, 2]
    assert [len(b) for b in pixel_batches(crops, pixels=10)] == [1] * 10
    assert torch.equal(torch.cat(pixel_batches(crops, pixels=1024)), crops)
    # the budget is the device's where the passes run (a model on a GPU: larger batches)
    assert [len(b) for b in pixel_batches(crops)] == [1] * 10  # the patched CPU budget, 384 px
    assert batch_pixels("meta") == DEVICE_BATCH_PIXELS > batch_pixels("cpu")
    assert [len(b) for b in pixel_batches(crops, "meta")] == [10]
