"""Half precision: local means, local instance norm and the converted zoo models on
bfloat16 / float16 inputs and under CPU bf16 autocast (the same code runs under CUDA
autocast). Box sums accumulate in float32 and return the input's dtype; the error is that
dtype's rounding, measured against float64 brute force or the float32 model."""

from __future__ import annotations

import pytest
import torch
from reference import brute_local_mean

from tlc_probe import LocalAvgPool2d, LocalInstanceNorm2d, convert
from tlc_probe.models import build

#: unit roundoff (half the machine epsilon) of each half dtype
UNIT = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_local_mean_of_a_half_map_is_within_its_rounding(dtype):
    # the float32 precision test's setting: a large map with an offset, one large and one
    # small window; a half-precision prefix sum would lose every digit here
    g = torch.Generator().manual_seed(0)
    x = (100.0 + torch.randn(1, 2, 360, 640, generator=g)).to(dtype)
    for k in ((192, 192), (7, 5)):
        got = LocalAvgPool2d(k)(x)
        assert got.dtype == dtype
        ref = brute_local_mean(x.double(), k)
        err = (got.double() - ref).abs().max().item()
        assert err <= 2 * UNIT[dtype] * 100.0 * 1.05, (k, err)  # 2 units at the value's scale


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_local_instance_norm_of_a_half_map(dtype):
    g = torch.Generator().manual_seed(1)
    x = 5.0 + 2.0 * torch.randn(1, 3, 96, 128, generator=g)
    norm = LocalInstanceNorm2d(3, (24, 32), affine=False).eval()
    ref = norm(x.double())
    got = norm(x.to(dtype))
    assert got.dtype == dtype
    # normalised values are O(1..4): a few units of rounding of the input, relative to its
    # spread (the mean is subtracted), plus the output's own rounding
    assert (got.double() - ref).abs().max().item() < 40 * UNIT[dtype]


@pytest.mark.filterwarnings("ignore:sites never called")
@pytest.mark.parametrize("name", ["mprnet", "nafnet", "ffanet", "restormer", "spdnet", "hinet"])
def test_converted_models_run_in_half_precision_as_accurately_as_the_global_model(name):
    # the default exact path (fused / valid heads, banded attention) under bf16 autocast
    # and as bf16 / fp16 modules; TLC may not add more error than the network's own
    # half-precision arithmetic adds to the global model
    torch.manual_seed(0)
    model = build(name, "tiny").eval()
    tlc = convert(model, train_size=32)
    x = torch.rand(1, 3, 75, 97)

    def half(net: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
        copy = build(name, "tiny").eval() if net is model else convert(model, train_size=32)
        return copy.to(dtype)

    with torch.no_grad():
        ref = {"tlc": tlc(x).double(), "whole": model(x).double()}
        for dtype in (torch.bfloat16, torch.float16):
            errs = {}
            for key, net in (("tlc", tlc), ("whole", model)):
                net_h = half(net, dtype)
                if key == "whole":
                    net_h.load_state_dict(model.state_dict())
                out = net_h(x.to(dtype))
                assert out.dtype == dtype and torch.isfinite(out).all()
                errs[key] = (out.double() - ref[key]).abs().max().item()
            assert errs["tlc"] <= 3 * errs["whole"] + 4 * UNIT[dtype], (dtype, errs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs = {"tlc": tlc(x), "whole": model(x)}
        errs = {k: (v.double() - ref[k]).abs().max().item() for k, v in outs.items()}
        assert torch.isfinite(outs["tlc"]).all()
        assert errs["tlc"] <= 3 * errs["whole"] + 4 * UNIT[torch.bfloat16], errs


def test_convert_under_autocast_and_the_probe_of_a_half_model_record_float32():
    from tlc_probe import Probe

    torch.manual_seed(0)
    model = build("nafnet", "tiny").eval()
    plain = convert(model, train_size=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the calibration runs under autocast
        under = convert(model, train_size=32)
    x = torch.rand(1, 3, 75, 97)
    with torch.no_grad():
        assert torch.equal(under(x), plain(x))  # the same windows, the same model
    half = convert(model, train_size=32).to(torch.bfloat16)
    with Probe(half, positions=3) as probe, torch.no_grad():
        half(x.to(torch.bfloat16))
    rows = probe.take(["img"])
    assert rows["value"].dtype == "float32" and rows["y"].notna().any()  # local rows too
    with Probe(plain, positions=3) as probe, torch.no_grad():
        plain(x)
    full = probe.take(["img"])
    diff = (rows["value"].to_numpy() - full["value"].to_numpy()).__abs__().max()
    assert diff < 0.05 * max(1.0, float(abs(full["value"]).max()))  # bf16-close
