"""Reliance on constructed models whose answer is known."""

import pytest
import torch
from torch import nn

from tlc_probe.jobs.reliance import RELIANCE_COLUMNS, reliance, site_constants


class IgnoredSite(nn.Module):
    """A pool whose output nothing uses: freezing it cannot change anything."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.body = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        self.pool(x)
        return x + 0.1 * self.body(x)


class GatedByMean(nn.Module):
    """Squeeze-excitation on the input: the output scales with each image's own mean."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return x * torch.sigmoid(4 * self.gate(self.pool(x)))


class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.InstanceNorm2d(3, affine=True)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        return 0.5 + 0.2 * self.norm(x)


def _items(n=3, same=False):
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 24, 32, generator=g) * (1 + i) / n for i in range(n)]
    if same:
        imgs = [imgs[0]] * n
    return [{"input": im, "target": im.clamp(0, 1), "id": f"im{i}"} for i, im in enumerate(imgs)]


def test_a_site_whose_output_is_ignored_has_zero_reliance():
    torch.manual_seed(0)
    table = reliance(IgnoredSite().eval(), _items())
    assert tuple(table.columns) == RELIANCE_COLUMNS
    assert table["site"].tolist() == ["pool", "all"]
    assert (table["delta_psnr"] == 0).all() and (table["mean_abs_delta"] == 0).all()


def test_a_site_the_output_uses_has_reliance_and_constants_are_the_mean_over_images():
    torch.manual_seed(0)
    model, items = GatedByMean().eval(), _items()
    const = site_constants(model, items)
    expected = torch.stack([it["input"].double().mean(dim=(1, 2)) for it in items]).mean(0)
    assert torch.allclose(const["pool"]["mean"], expected, atol=1e-6)
    table = reliance(model, items)
    assert (table["mean_abs_delta"] > 1e-3).all()
    # freezing to the reference mean: the images' means differ, so the gates do too
    assert table.loc[table.site == "pool", "delta_psnr"].item() != 0


def test_instance_norm_frozen_to_the_statistics_it_would_compute_changes_nothing():
    # All images identical: the constant mean / std are each image's own, so the frozen
    # norm must reproduce torch's InstanceNorm2d (the reference) to float precision.
    torch.manual_seed(0)
    table = reliance(Normed().eval(), _items(same=True))
    assert table["mean_abs_delta"].max() < 1e-5
    assert table["delta_psnr"].abs().max() < 1e-3
    # different images: frozen statistics differ from each image's own
    assert reliance(Normed().eval(), _items())["mean_abs_delta"].min() > 1e-3


def test_unknown_site_names_are_refused():
    with pytest.raises(ValueError, match="no executed site"):
        reliance(IgnoredSite().eval(), _items(), sites=["nosuch"])


def test_constants_from_a_reference_score_a_subset():
    # One scored image with itself as reference: its own statistic, nothing changes.
    torch.manual_seed(0)
    model, items = GatedByMean().eval(), _items()
    alone = reliance(model, items[:1])
    assert alone["mean_abs_delta"].max() < 1e-7
    # The same image with all three as reference: the gate sees the mean of the three
    # images' means; the frozen output is x * sigmoid(4 gate(that mean)), by hand.
    table = reliance(model, items[:1], reference=items)
    mean = torch.stack([it["input"].mean(dim=(1, 2)) for it in items]).mean(0)
    with torch.no_grad():
        x = items[0]["input"][None]
        gate = torch.sigmoid(4 * model.gate(mean.view(1, 3, 1, 1)))
        frozen, free = x * gate, model(x)
    expected = (frozen - free).abs().mean().item()
    assert table.loc[table.site == "pool", "mean_abs_delta"].item() == pytest.approx(
        expected, rel=1e-5
    )
    assert table["n_images"].tolist() == [1, 1]
