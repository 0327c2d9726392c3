"""Local channel attention (TLC for Restormer's MDTA) against a brute-force windowed
reference, its fast cell-grid variant, the probe's attention statistics and reliance on
an attention site."""

import pytest
import torch
import torch.nn.functional as F
from reference import brute_local_channel_attention

from tlc_probe import Probe, convert
from tlc_probe.models import build
from tlc_probe.probe import training_windows
from tlc_probe.tlc import attention as attention_module
from tlc_probe.tlc.attention import (
    LocalChannelAttention,
    attention_stats,
    attention_stats_at,
    blend_weights,
    channel_attention,
    local_channel_attention,
    local_channel_attention_bands,
    local_channel_attention_fast,
)
from tlc_probe.tlc.convert import backend


def _qkv(n=2, c=6, h=13, w=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, c, h, w, generator=g) for _ in range(3))
    q[:, :3] += 1.5  # channels with an offset: centring matters in float32
    return q, k, v, torch.tensor([0.7, 2.0]).view(2, 1, 1)


@pytest.mark.parametrize("kernel", [(5, 7), (2, 3), (13, 3), (20, 30)])
def test_exact_equals_brute_force_on_odd_sizes(kernel):
    q, k, v, t = _qkv()
    ref = brute_local_channel_attention(q, k, v, t, 2, kernel)
    got = local_channel_attention(q, k, v, t, 2, kernel)
    assert got.dtype == torch.float32
    assert (got.double() - ref).abs().max() < 2e-5
    chunked = local_channel_attention(q, k, v, t, 2, kernel, max_elements=1)  # one row at a time
    assert torch.allclose(chunked, got, atol=1e-6)


def test_window_covering_the_map_is_the_global_attention():
    q, k, v, t = _qkv()
    ref = brute_local_channel_attention(q, k, v, t, 2, (13, 17))
    assert (channel_attention(q, k, v, t, 2).double() - ref).abs().max() < 1e-5


def test_exact_gradients_equal_brute_force():
    q, k, v, t = (x.double().requires_grad_() for x in _qkv(n=1, c=4, h=7, w=9))
    t = torch.tensor([0.5, 1.5], dtype=torch.float64).view(2, 1, 1).requires_grad_()
    got = torch.autograd.grad(
        local_channel_attention(q, k, v, t, 2, (4, 5)).square().sum(), [q, k, v, t]
    )
    ref = torch.autograd.grad(
        brute_local_channel_attention(q, k, v, t, 2, (4, 5)).square().sum(), [q, k, v, t]
    )
    for a, b in zip(got, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-8)


def test_fast_with_unit_cells_is_exact_and_cell_aligned_starts_are_exact():
    q, k, v, t = _qkv()
    ref = brute_local_channel_attention(q, k, v, t, 2, (5, 7))
    unit = local_channel_attention_fast(q, k, v, t, 2, (5, 7), (1, 1))
    assert (unit.double() - ref).abs().max() < 2e-5
    ref = brute_local_channel_attention(q, k, v, t, 2, (6, 8))
    fast = local_channel_attention_fast(q, k, v, t, 2, (6, 8), (2, 2))
    # positions whose window starts on a cell boundary in both axes get their exact matrix
    rows = [y for y in range(13) if min(max(y - 2, 0), 13 - 6) % 2 == 0]
    cols = [x for x in range(17) if min(max(x - 3, 0), 17 - 8) % 2 == 0]
    d = (fast.double() - ref)[..., rows, :][..., cols]
    assert d.abs().max() < 2e-5
    assert (fast.double() - ref).abs().max() > 1e-3  # the others are blended: not exact
    with pytest.raises(ValueError, match="divide"):
        local_channel_attention_fast(q, k, v, t, 2, (6, 8), (4, 4))


def test_fast_error_on_a_smooth_map():
    """The cell-grid blend against brute force on smooth maps (what features look like
    at the scale of a window): the error stated in tlc.attention's docstring."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 56), indexing="ij")
    base = torch.stack([torch.sin(3 * yy + i) * torch.cos(2 * xx - i) for i in range(8)])[None]
    q, k, v = base, base.roll(1, dims=1) + 0.3 * xx, base.flip(1)
    t = torch.tensor([1.0, 3.0]).view(2, 1, 1)
    ref = brute_local_channel_attention(q, k, v, t, 2, (24, 24))
    fast = local_channel_attention_fast(q, k, v, t, 2, (24, 24), (3, 3))
    err = float((fast.double() - ref).abs().max() / ref.abs().max())
    assert err < 0.03  # measured 0.019


def test_blend_weights_rows_sum_to_one_and_hit_cell_starts():
    m = blend_weights(20, 8, 2, 7, torch.float64)
    assert torch.allclose(m.sum(1), torch.ones(20, dtype=torch.float64))
    # pixel y = 3 + 2 j has its window start at 2 j: weight 1 on cell j
    for j in range(7):
        assert m[3 + 2 * j, j] == 1.0


def test_attention_stats_by_hand():
    q, k, _, t = _qkv(n=1)
    stats = attention_stats(q, k, t, 2)
    qh, kh = q.reshape(1, 2, 3, -1).double(), k.reshape(1, 2, 3, -1).double()
    assert torch.allclose(
        stats["q_rms"].double(), qh.square().mean(-1).sqrt().reshape(1, 6), atol=1e-6
    )
    assert torch.allclose(
        stats["k_rms"].double(), kh.square().mean(-1).sqrt().reshape(1, 6), atol=1e-6
    )
    cos = F.normalize(qh, dim=-1) @ F.normalize(kh, dim=-1).transpose(-1, -2)
    want = (cos * t.double().view(1, 2, 1, 1)).mean(-1).reshape(1, 6)
    assert torch.allclose(stats["logit_mean"].double(), want, atol=1e-6)
    # over windows: each equals the global statistics of its crop
    iy, ix = torch.tensor([0, 4]), torch.tensor([1, 9])
    at = attention_stats_at(q, k, t, 2, (6, 8), iy, ix)
    for p, (y0, x0) in enumerate([(0, 1), (0, 9), (4, 1), (4, 9)]):
        crop = attention_stats(
            q[..., y0 : y0 + 6, x0 : x0 + 8], k[..., y0 : y0 + 6, x0 : x0 + 8], t, 2
        )
        for stat in crop:
            assert torch.allclose(at[stat][..., p], crop[stat], atol=1e-5), stat


@pytest.fixture(scope="module")
def restormer():
    torch.manual_seed(0)
    return build("restormer", "tiny").eval()


def test_probe_records_attention_sites_in_every_regime(restormer):
    tlc = convert(restormer, train_size=64)
    big = torch.rand(1, 3, 96, 136)
    regimes = {
        "whole": (restormer, {}),
        "tlc": (tlc, {}),
        "window": (restormer, {"windows": training_windows(restormer, 64)}),
    }
    for regime, (model, kw) in regimes.items():
        with Probe(model, **kw) as probe, torch.no_grad():
            model(big)
        df = probe.take(["img"])
        assert set(df["kind"]) == {"attn"}, regime
        assert set(df["stat"]) == {"q_rms", "k_rms", "logit_mean"}, regime
        assert df["site"].nunique() == 8
        local = df[df["site"] == "encoder_level1.0.attn"]
        assert local["y"].notna().all() == (regime != "whole"), regime
    # a tlc-regime record equals the global statistics of the crop its window covers
    att = tlc.encoder_level1[0].attn
    seen = []
    hook = att.qkv_dwconv.register_forward_hook(lambda m, a, out: seen.append(out))
    with Probe(tlc, names=["encoder_level1.0.attn"]) as probe, torch.no_grad():
        tlc(big)
    hook.remove()
    rows = probe.take(["img"])
    q, k, _ = seen[-1].chunk(3, dim=1)  # (the Probe's ordering pass ran first)
    corner = rows[(rows["y"] == 47) & (rows["x"] == 47) & (rows["stat"] == "q_rms")]
    crop = attention_stats(q[..., :96, :96], k[..., :96, :96], att.temperature, att.num_heads)
    got = torch.tensor(corner.sort_values("channel")["value"].to_numpy())
    assert len(got) == 16 and torch.allclose(got, crop["q_rms"][0], atol=1e-5)


def test_reliance_freezes_the_attention_matrix(restormer):
    from tlc_probe.jobs.reliance import reliance

    g = torch.Generator().manual_seed(3)
    items = [
        {
            "input": torch.rand(3, 40, 48, generator=g),
            "target": torch.rand(3, 40, 48, generator=g),
            "id": str(i),
        }
        for i in range(2)
    ]
    # one image that is its own reference: the constant is its own matrix, nothing changes
    own = reliance(restormer, items[:1])
    assert own["mean_abs_delta"].abs().max() < 1e-6
    both = reliance(restormer, items[:1], reference=items)
    assert (both["kind"] == "attn").sum() == 8
    assert both.set_index("site").loc["all", "mean_abs_delta"] > 1e-5


def test_pending_counts_attention_sites_run_without_the_models_forward(restormer):
    """Training runs forward_all, which calls forward directly (no model hook fires): the
    samples are then counted at the sites, which record no 'mean'."""
    with Probe(restormer) as probe, torch.no_grad():
        restormer.forward_all(torch.rand(2, 3, 32, 32))
        assert probe.pending() == 2
        assert probe.take(["a", "b"])["sample"].nunique() == 2


def test_local_attention_gradients_finite_where_a_window_is_zero():
    q, k, v, t = (x.requires_grad_() for x in _qkv(n=1, c=4, h=9, w=9))
    with torch.no_grad():
        q[:, 0, :5, :5] = 0  # a window of zeros in query channel 0
    out = local_channel_attention(q, k, v, t, 2, (5, 5))
    grads = torch.autograd.grad(out.sum(), [q, k, v])
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    ("kernel", "rows"), [((5, 7), 2), ((2, 3), None), ((13, 3), 1), ((6, 17), 4), ((11, 9), 50)]
)
def test_banded_exact_equals_brute_force(kernel, rows):
    """The row-band path (``fused``) on odd sizes and batch 2: windows as tall / as wide as
    the map, bands of one row and taller than the valid rows."""
    q, k, v, t = _qkv()
    ref = brute_local_channel_attention(q, k, v, t, 2, kernel)
    got = local_channel_attention_bands(q, k, v, t, 2, kernel, rows)
    assert got.dtype == torch.float32 and got.shape == v.shape
    assert (got.double() - ref).abs().max() < 2e-5
    g64 = local_channel_attention_bands(*(x.double() for x in (q, k, v, t)), 2, kernel, rows)
    assert g64.dtype == torch.float64 and (g64 - ref).abs().max() < 1e-10


def test_banded_softmax_with_a_large_temperature():
    q, k, v, _ = _qkv(n=1, c=4, h=12, w=10)
    k[:, 0] = q[:, 0]  # a cosine of 1: logit 90, and exp(90) overflows float32
    t = torch.tensor([90.0, 0.3]).view(2, 1, 1)
    ref = brute_local_channel_attention(q, k, v, t, 2, (5, 6))
    got = local_channel_attention_bands(q, k, v, t, 2, (5, 6), rows=3)
    assert torch.isfinite(got).all() and (got.double() - ref).abs().max() < 1e-5  # 1.3e-6


def test_fused_attention_module_takes_the_bands_without_autograd_only():
    model = build("restormer", "tiny").eval()
    with backend("plain"):
        exact = convert(model, train_size=32)
    fused = convert(model, train_size=32)  # the default exact implementation: bands
    sites = [m for m in fused.modules() if isinstance(m, LocalChannelAttention)]
    assert sites and all(m.fused for m in sites) and "fused=True" in repr(sites[0])
    x = torch.rand(2, 3, 75, 61)  # level 1 (75 x 61) is wider than its 48-px window
    calls = []
    real = attention_module.local_channel_attention_bands

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    attention_module.local_channel_attention_bands = spy
    try:
        with torch.no_grad():
            a, b = exact(x), fused(x)
        assert calls  # the bands ran ...
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        n = len(calls)
        xg = x.clone().requires_grad_()
        (ga,) = torch.autograd.grad(exact(xg).sum(), xg)
        (gb,) = torch.autograd.grad(fused(xg).sum(), xg)
        assert len(calls) == n  # ... but not under autograd
        torch.testing.assert_close(gb, ga, rtol=1e-5, atol=1e-6)
        q, k, v, t = _qkv()
        q[0, 1, 3, 4] = float("nan")  # NaN: the plain path, NaN where it has them
        mod = LocalChannelAttention((5, 7), 2, fused=True)
        mod.temperature.data = t
        with torch.no_grad():
            got = mod.attend(q, k, v)
        assert torch.equal(got.isnan(), local_channel_attention(q, k, v, t, 2, (5, 7)).isnan())
    finally:
        attention_module.local_channel_attention_bands = real
    with pytest.raises(ValueError, match="fused"):
        LocalChannelAttention((5, 7), 2, fast_imp=True, fused=True)


@pytest.mark.parametrize("temp", [90.0, 50.0, 20.0])
def test_windows_of_zero_query_or_key_channels_equal_brute_force(temp):
    # brute force normalises a zero vector to 0: logits 0, uniform attention in that row;
    # the integral images leave ~1e-7 residues there, which must count as zero
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 4, 12, 10, generator=g) for _ in range(3))
    q[:, :2] += 3.0  # offsets: the residues of the centred sums are larger
    q[:, 0, 3:9, 2:8] = 0.0  # a 6 x 6 block of zeros in query channel 0
    k[:, 3, :7, :] = 0.0  # and the top rows of key channel 3 (the second head)
    t = torch.tensor([temp, 0.3]).view(2, 1, 1)
    kernel = (5, 6)
    ref = brute_local_channel_attention(q, k, v, t, 2, kernel)
    exact = local_channel_attention(q, k, v, t, 2, kernel)
    bands = local_channel_attention_bands(q, k, v, t, 2, kernel, rows=3)
    fast = local_channel_attention_fast(q, k, v, t, 2, kernel, (1, 1))  # r = 1: exact windows
    for got in (exact, bands, fast):
        assert (got.double() - ref).abs().max() < 1e-5
    q64, k64, v64, t64 = (x.double() for x in (q, k, v, t))
    assert (local_channel_attention(q64, k64, v64, t64, 2, kernel) - ref).abs().max() < 1e-10
    # the window statistics the probe records see the same zero vectors
    stats = attention_stats_at(q, k, t, 2, kernel, torch.tensor([3]), torch.tensor([2]))
    assert stats["q_rms"][0, 0, 0] == 0 and stats["logit_mean"][0, 0, 0] == 0


def test_one_bad_pixel_moves_no_other_windows_zero_floor():
    # a NaN, an inf or (fp16) a value whose square overflows must not floor the norms of
    # every window of its channel: windows away from it equal the clean reference
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(1, 2, 12, 12, generator=g) for _ in range(3))
    t = torch.tensor([2.0]).view(1, 1, 1)
    kernel = (4, 4)
    ref = brute_local_channel_attention(q, k, v, t, 1, kernel)
    far = (slice(None), slice(None), slice(0, 5), slice(0, 5))  # windows without (11, 11)
    for bad in (float("nan"), float("inf")):
        qb = q.clone()
        qb[0, 0, 11, 11] = bad
        for got in (
            local_channel_attention(qb, k, v, t, 1, kernel),
            local_channel_attention_fast(qb, k, v, t, 1, kernel, (1, 1)),
        ):
            assert (got[far].double() - ref[far]).abs().max() < 1e-5, bad
    qh = q.clone()
    qh[0, 0, 11, 11] = 300.0  # 300^2 overflows float16
    ref_h = brute_local_channel_attention(qh, k, v, t, 1, kernel)
    got = local_channel_attention(qh.half(), k.half(), v.half(), t, 1, kernel)
    assert (got[far].double() - ref_h[far]).abs().max() < 5e-3  # fp16's own rounding


def test_window_stats_keep_a_bad_value_in_the_windows_and_channels_that_hold_it():
    # the blocks between window edges: a NaN / inf reaches only windows covering its pixel,
    # and only the statistics of its channel; every other window equals its crop's
    g = torch.Generator().manual_seed(11)
    q, k = (torch.randn(1, 4, 14, 15, generator=g) for _ in range(2))
    t = torch.tensor([1.5, 0.7]).view(2, 1, 1)
    iy, ix = torch.tensor([0, 3, 8]), torch.tensor([0, 6, 9])
    for bad in (float("nan"), float("inf")):
        qb = q.clone()
        qb[0, 1, 2, 4] = bad  # channel 1 (head 0), covered by windows starting at rows 0
        at = attention_stats_at(qb, k, t, 2, (6, 6), iy, ix)
        for p, (y0, x0) in enumerate([(y, x) for y in iy.tolist() for x in ix.tolist()]):
            covers = y0 <= 2 < y0 + 6 and x0 <= 4 < x0 + 6
            crop = attention_stats(
                q[..., y0 : y0 + 6, x0 : x0 + 6], k[..., y0 : y0 + 6, x0 : x0 + 6], t, 2
            )
            for stat, v in at.items():
                got = v[0, :, p]
                hit = [1] if covers and stat != "k_rms" else []  # q_1's own rms and logits
                assert torch.isnan(got[hit]).all(), (stat, p)
                rest = [i for i in range(4) if i not in hit]
                torch.testing.assert_close(got[rest], crop[stat][0, rest], atol=1e-5, rtol=1e-5)
