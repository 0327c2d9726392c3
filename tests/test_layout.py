"""The memory layout tlc-probe picks by itself (``tensors.channels_last_on_cpu``): a speed
choice that must leave the numbers alone."""

from __future__ import annotations

import torch
from torch import nn

from tlc_probe.jobs.subject import load_subject
from tlc_probe.models import build
from tlc_probe.store.checkpoint import load_checkpoint
from tlc_probe.store.shipped import shipped_checkpoints
from tlc_probe.tensors import channels_last_on_cpu


def test_a_loaded_checkpoint_runs_channels_last_with_the_default_layouts_numbers():
    ck = next(c for c in shipped_checkpoints() if "nafnet" in c.name)
    subject = load_subject(ck)
    convs = [m for m in subject.model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    plain = build("nafnet", "tiny").eval()
    load_checkpoint(plain, ck)
    assert plain.intro.weight.is_contiguous()  # the reference keeps the default layout
    x = torch.rand(1, 3, 67, 90)
    with torch.no_grad():
        torch.testing.assert_close(subject.model(x), plain(x), rtol=1e-5, atol=1e-5)


def test_only_cpu_models_with_convolutions_change_layout():
    mlp = nn.Sequential(nn.Linear(4, 4))
    assert channels_last_on_cpu(mlp) is mlp and mlp[0].weight.is_contiguous()
    assert channels_last_on_cpu(nn.Identity()) is not None  # no parameters: unchanged
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    assert channels_last_on_cpu(net)[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_moving_off_the_cpu_restores_the_default_layout():
    from tlc_probe.tensors import to_device

    net = channels_last_on_cpu(nn.Sequential(nn.Conv2d(3, 4, 3)))
    assert to_device(net, "cpu")[0].weight.is_contiguous(memory_format=torch.channels_last)
    moved = to_device(net, "meta")  # any other device: PyTorch's layout back
    assert moved[0].weight.device.type == "meta" and moved[0].weight.is_contiguous()
