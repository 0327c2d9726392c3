"""Regression suite of issue 19: bad inputs give the right answer or one clear error.

Most cases failed before their fix (the failure is named in the test's docstring or the
section's comment); the few that earlier changes had already fixed (``plot --sites``
naming no site, ``bench --sizes 0x0``, ``--repeats 0``) are kept so that they stay fixed.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import brute_window_instance_norm, brute_window_means, fast_reference
from toy_models import CALayer, ToyNet

from tlc_probe import LocalAvgPool2d, LocalInstanceNorm2d, Probe, convert
from tlc_probe.tlc.box import (
    box_mean,
    box_mean_fast,
    box_mean_fast_valid,
    box_mean_valid,
    fast_error_bound,
    fast_stride,
)

# --------------------------------------------------------------------------------------
# Non-finite values stay local (issue 19, item 6): before, one NaN pixel made every
# output of its channel NaN (1024 of 1024 on 32x32 with an 8x8 window; brute force: 49).


def _same_nonfinite(got: torch.Tensor, ref: torch.Tensor) -> None:
    """NaN, +inf and -inf at exactly the same places."""
    got, ref = got.double(), ref.double()
    assert torch.equal(got.isnan(), ref.isnan()), "NaN pattern differs"
    assert torch.equal(got == math.inf, ref == math.inf), "+inf pattern differs"
    assert torch.equal(got == -math.inf, ref == -math.inf), "-inf pattern differs"


def _close_where_finite(got, ref, x, tol=1e-5):
    fin = torch.isfinite(ref)
    finite_x = x.double()[torch.isfinite(x)]
    scale = finite_x.abs().max().clamp(min=1.0) if finite_x.numel() else torch.ones(())
    err = (got.double()[fin] - ref[fin]).abs().max() if fin.any() else torch.zeros(())
    assert float(err / scale) <= tol


def _sprinkle(x: torch.Tensor, where: list[tuple[int, int, int, int]], values) -> torch.Tensor:
    x = x.clone()
    for idx, v in zip(where, values, strict=True):
        x[idx] = v
    return x


def test_one_nan_pixel_spoils_only_its_windows():
    x = _sprinkle(torch.randn(1, 1, 32, 32), [(0, 0, 10, 20)], [math.nan])
    got = LocalAvgPool2d(8)(x)
    ref = brute_window_means(x, (8, 8))
    assert int(ref.isnan().sum()) < 1024  # the case of the issue: local, not the channel
    _same_nonfinite(got, ref)
    _close_where_finite(got, ref, x)


CASES = [
    ((2, 3, 17, 23), (5, 7), [(0, 1, 3, 4), (1, 2, 16, 22)], [math.nan, math.inf]),
    ((1, 2, 9, 31), (4, 12), [(0, 0, 4, 10), (0, 0, 5, 12)], [math.inf, -math.inf]),
    ((1, 1, 20, 20), (6, 6), [(0, 0, 0, 0), (0, 0, 19, 19)], [-math.inf, math.nan]),
    ((2, 2, 13, 11), (40, 3), [(1, 1, 6, 5)], [math.inf]),  # window taller than the map
]


@pytest.mark.parametrize("shape,kernel,where,values", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_box_mean_nonfinite_as_brute_force(shape, kernel, where, values, dtype):
    x = _sprinkle(torch.randn(shape, dtype=dtype) * 2 + 3, where, values)
    ref = brute_window_means(x, kernel)
    for got in (box_mean(x, kernel), box_mean(x, kernel, centre=False)):
        assert got.dtype == dtype
        _same_nonfinite(got, ref)
        _close_where_finite(got, ref, x)
    kh, kw = min(kernel[0], shape[2]), min(kernel[1], shape[3])
    valid = box_mean_valid(x, kernel)
    r = ((kh - 1) // 2, (kw - 1) // 2)
    ref_valid = ref[..., r[0] : r[0] + shape[2] - kh + 1, r[1] : r[1] + shape[3] - kw + 1]
    _same_nonfinite(valid, ref_valid)
    # a scratch map handed over with overwrite=True gives the same
    _same_nonfinite(box_mean(x.clone(), kernel, overwrite=True), ref)


@pytest.mark.parametrize("shape,kernel,where,values", CASES[:3])
def test_exact_box_mean_nonfinite_under_autograd(shape, kernel, where, values):
    x = _sprinkle(torch.randn(shape, dtype=torch.float64), where, values).requires_grad_()
    got = box_mean(x, kernel)
    ref = brute_window_means(x.detach(), kernel)
    _same_nonfinite(got.detach(), ref)
    _close_where_finite(got.detach(), ref, x.detach())
    got[torch.isfinite(got)].sum().backward()  # finite windows give finite gradients
    assert torch.isfinite(x.grad[torch.isfinite(x.detach())]).all()


@pytest.mark.parametrize(
    "shape,kernel,where,values",
    [
        ((1, 2, 40, 52), (24, 32), [(0, 0, 5, 7), (0, 1, 30, 40)], [math.nan, math.inf]),
        ((2, 1, 33, 47), (16, 24), [(1, 0, 20, 3)], [-math.inf]),
    ],
)
def test_fast_box_mean_nonfinite_as_brute_force(shape, kernel, where, values):
    x = _sprinkle(torch.rand(shape), where, values)
    strides = (fast_stride(kernel[0]), fast_stride(kernel[1]))
    assert strides != (1, 1)
    ref = brute_window_means(x, kernel)
    got = box_mean_fast(x, kernel)
    _same_nonfinite(got, ref)
    # the finite windows: the fast variant of the map with zeros in place of NaN / inf
    z = torch.where(torch.isfinite(x), x, torch.zeros(()))
    want = fast_reference(z, kernel, strides)
    fin = torch.isfinite(ref)
    assert (got.double()[fin] - want[fin]).abs().max() < 1e-5
    # and within the published bound of the exact local mean (range of that map)
    rng = float(z.max() - z.min())
    exact = brute_window_means(z, kernel)
    assert (got.double()[fin] - exact[fin]).abs().max() <= fast_error_bound(kernel, strides) * rng
    kh, kw = kernel
    valid = box_mean_fast_valid(x, kernel)
    r = ((kh - 1) // 2, (kw - 1) // 2)
    ref_valid = ref[..., r[0] : r[0] + shape[2] - kh + 1, r[1] : r[1] + shape[3] - kw + 1]
    _same_nonfinite(valid, ref_valid)


@pytest.mark.parametrize("fast,grid_head", [(False, False), (True, False), (True, True)])
def test_pool_module_and_grid_head_keep_nonfinite_local(fast, grid_head):
    x = _sprinkle(torch.rand(1, 4, 48, 64), [(0, 2, 12, 30)], [math.nan])
    pool = LocalAvgPool2d((24, 32), fast_imp=fast, grid_head=grid_head)
    got = pool(x)
    ref = brute_window_means(x, (24, 32))
    assert got.shape == x.shape
    _same_nonfinite(got * 1.0, ref)  # * 1.0: a GridMap would expand here


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("shape,kernel,where,values", CASES)
def test_local_instance_norm_nonfinite_as_brute_force(shape, kernel, where, values, fast):
    x = _sprinkle(torch.randn(shape) + 1, where, values)
    norm = LocalInstanceNorm2d(shape[1], kernel, fast_imp=fast)
    if norm.covers(shape[-2:]):
        pytest.fail("case must be local")
    got = norm(x)
    ref = brute_window_instance_norm(x, kernel)
    assert int(ref.isnan().sum()) < ref.numel()
    _same_nonfinite(got, ref)
    if not fast:
        _close_where_finite(got, ref, torch.ones(1), tol=1e-4)
    mu, var = norm.moments(x - 1.0)  # the probe's entry: NaN variance in the same windows
    assert torch.equal(var.isnan(), ref.isnan()) and not var.isinf().any()
    _same_nonfinite(mu + 1.0, brute_window_means(x, kernel))


def test_probe_tlc_rows_stay_finite_away_from_a_nan_pixel():
    torch.manual_seed(0)
    model = ToyNet().eval()
    tlc = convert(model, train_size=16)
    x = torch.rand(1, 3, 64, 64)
    x[0, 0, 5, 5] = math.nan
    with Probe(tlc, positions=6) as probe, torch.no_grad():
        tlc(x)
    df = probe.take(["img"])
    rows = df[df.y.notna()]
    frac = rows["value"].isna().mean()
    assert 0 < frac < 0.9, frac  # before: every row of the tlc regime was NaN


finite_or_not = st.sampled_from([math.nan, math.inf, -math.inf])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    h=st.integers(1, 18),
    w=st.integers(1, 18),
    kh=st.integers(1, 22),
    kw=st.integers(1, 22),
    double=st.booleans(),
    seed=st.integers(0, 2**16),
    bad=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), finite_or_not), max_size=4),
)
def test_property_local_mean_and_norm_match_brute_force(n, c, h, w, kh, kw, double, seed, bad):
    dtype = torch.float64 if double else torch.float32
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, h, w, generator=g) * 3 + 2).to(dtype)
    for fy, fx, v in bad:
        x[n - 1, c - 1, int(fy * (h - 1)), int(fx * (w - 1))] = v
    ref = brute_window_means(x, (kh, kw))
    got = box_mean(x, (kh, kw))
    _same_nonfinite(got, ref)
    _close_where_finite(got, ref, x)
    _same_nonfinite(box_mean_fast(x, (kh, kw)), ref)  # fast: same places, any strides
    norm = LocalInstanceNorm2d(c, (kh, kw))
    if not norm.covers((h, w)) and h * w > 1:
        ref_in = brute_window_instance_norm(x, (kh, kw))
        got_in = norm(x)
        _same_nonfinite(got_in, ref_in)


# --------------------------------------------------------------------------------------
# Sizes are ints (item 7): before, strings were split into characters ("64" -> (6, 4)).


def test_sizes_refuse_strings_and_floats_and_take_int_likes():
    import numpy as np

    from tlc_probe import tiled_inference
    from tlc_probe.sizes import as_pair

    model = ToyNet().eval()
    for bad in ("64", 64.0, True, (32, "32")):
        with pytest.raises(ValueError, match="train_size"):
            convert(model, train_size=bad)
    x = torch.rand(1, 3, 40, 40)
    with pytest.raises(ValueError, match="tile"):
        tiled_inference(lambda t: t, x, tile="32", overlap=0)
    for good in (np.int64(16), torch.tensor(16), (np.int32(16), 16)):
        assert as_pair(good, "tile") == (16, 16)
    out = tiled_inference(lambda t: t * 2, x, tile=np.int64(16), overlap=torch.tensor(4))
    assert torch.equal(out, x * 2)


# --------------------------------------------------------------------------------------
# Odd dtypes and empty batches (item "integer and odd dtypes"): before, an integer map
# was pooled as float (no error), and an empty batch raised where the original did not.


def test_integer_maps_are_refused_like_torch_and_empty_batches_pass():
    xi = torch.arange(2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.nn.AdaptiveAvgPool2d(1)(xi)  # torch's own pool refuses integers ...
    with pytest.raises(TypeError, match="floating-point"):
        LocalAvgPool2d(4)(xi)  # ... and so does ours
    with pytest.raises(TypeError, match="floating-point"):
        LocalInstanceNorm2d(3, 4)(xi)
    empty = torch.zeros(0, 3, 8, 8)
    assert LocalAvgPool2d(4)(empty).shape == (0, 3, 8, 8)
    assert LocalAvgPool2d(8)(empty).shape == torch.nn.AdaptiveAvgPool2d(1)(empty).shape
    for model in (ToyNet().eval(), torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), CALayer(8))):
        tlc = convert(model, train_size=16)
        empty = torch.zeros(0, 3, 40, 40)
        with torch.no_grad():
            try:
                want = model(empty).shape
            except Exception as e:  # torch's instance norm refuses an empty batch ...
                with pytest.raises(type(e)):  # ... and so does the converted model
                    tlc(empty)
            else:
                assert tlc(empty).shape == want


# --------------------------------------------------------------------------------------
# Runaway tilings are refused with the estimate (item "runaways").


def test_runaway_tilings_are_refused_with_the_estimate_unless_forced():
    from tlc_probe import tiled_inference
    from tlc_probe.tiling import check_tiling, image_tiles

    assert check_tiling(720, 1280, 256, 128) == 45  # the paper's setting passes
    with pytest.raises(ValueError, match=r"921600 tiles"):
        check_tiling(720, 1280, 1, 0)  # 1-px tiles
    with pytest.raises(ValueError, match=r"times its pixels"):
        check_tiling(720, 1280, 64, 63)  # a 1-px stride
    x = torch.rand(1, 3, 60, 60)
    with pytest.raises(ValueError, match="force=True"):
        tiled_inference(lambda t: t, x, tile=8, overlap=7)
    assert torch.allclose(tiled_inference(lambda t: t, x, tile=8, overlap=7, force=True), x)
    with pytest.raises(ValueError, match="tiles"):
        image_tiles(x[0], 8, 7)


# --------------------------------------------------------------------------------------
# 16-bit colour PNGs keep their 16 bits (item 8): before, Pillow quantised them to 8 bits.


def _write_png16(path, a, sbit=None):
    """A 16-bit PNG written by hand (zlib + struct): independent of any image library.
    Rows after the first use PNG filter 2 (Up); ``sbit`` adds an sBIT chunk."""
    import struct
    import zlib

    h, w, c = a.shape
    rows = [a[y].astype(">u2").tobytes() for y in range(h)]
    raw = b"\x00" + rows[0]
    for prev, row in zip(rows[:-1], rows[1:], strict=True):
        raw += b"\x02" + bytes((x - p) % 256 for x, p in zip(row, prev, strict=True))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0)
    extra = chunk(b"sBIT", bytes([sbit] * c)) if sbit else b""
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels,sbit", [(3, None), (4, None), (3, 12)])
def test_16_bit_colour_png_is_read_exactly(tmp_path, channels, sbit):
    import numpy as np

    from tlc_probe.data import read_image

    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, size=(5, 7, channels), dtype=np.uint16)
    if channels == 4:
        a[..., 3] = 65535  # opaque
    _write_png16(tmp_path / "x.png", a, sbit)
    got = read_image(tmp_path / "x.png")
    want = torch.from_numpy(a[..., :3].astype(np.float32) / 65535.0).permute(2, 0, 1)
    assert got.shape == (3, 5, 7)
    # all 16 bits as stored: 8-bit quantisation, or an sBIT shift, would differ
    assert torch.equal(got, want)


def test_unreadable_image_says_so_plainly(tmp_path):
    from tlc_probe.data import read_image

    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image file Pillow can identify"):
        read_image(tmp_path / "t.png")


# --------------------------------------------------------------------------------------
# The command line: nothing lost, nothing mixed, one line and exit 2 for every bad input.

TS = 32


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from tlc_probe.models import build
    from tlc_probe.store import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "nafnet-tiny-deblur.pt"
    save_checkpoint(build("nafnet", "tiny").eval(), path, train_size=TS, task="deblur")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from folders import pairs_folder

    return pairs_folder(tmp_path_factory.mktemp("data") / "d", 2, 40, 56)


def _collect_argv(ckpt, data, out, *extra):
    argv = ["collect", "--checkpoint", ckpt, "--data", data, "--train-data", data, "--out", out]
    argv += ["--crops", "4", "--batch", "2", "--positions", "3", "--overlap", "8"]
    return [str(a) for a in argv + list(extra)]


def _fails(capsys, argv, says):
    """``argv`` exits 2 with one line ``tlc-probe <cmd>: error: ...`` containing ``says``."""
    from tlc_probe.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (rc, lines)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"tlc-probe {argv[0]}: error: "), lines[0]
    assert says in lines[0], lines[0]
    return lines[0]


def _ok(capsys, argv):
    from tlc_probe.cli import main

    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err


def _rows(store):
    from tlc_probe.store import read_stats

    key = ["regime", "site", "sample", "channel", "stat", "y", "x"]
    return read_stats(store).sort_values(key, ignore_index=True)


def test_overwrite_validates_everything_before_deleting(tmp_path, ckpt, data, capsys):
    """Item 1: --overwrite with --base-size 0 left 9,216 of 158,976 rows; it also deleted
    foreign files under the run folder."""
    import shutil

    import pandas as pd

    out = tmp_path / "s"
    _ok(capsys, _collect_argv(ckpt, data, out, "--regimes", "train,whole,tlc"))
    before = _rows(out)
    for flags, says in (
        (["--base-size", "0"], "--base-size must be >= 1"),
        (["--seed", "-1"], "seed must be >= 0"),
        (["--writer", "../../../x"], "writer must be"),
    ):
        argv = _collect_argv(ckpt, data, out, "--regimes", "train,whole,tlc", "--overwrite")
        _fails(capsys, argv + flags, says)
        pd.testing.assert_frame_equal(_rows(out), before)
    assert not list(tmp_path.rglob("x*.parquet"))
    bad = tmp_path / "bad"  # a corrupt image found late (the second of two)
    shutil.copytree(data, bad)
    (bad / "input" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    argv = _collect_argv(ckpt, bad, out, "--regimes", "train,whole,tlc", "--overwrite")
    _fails(capsys, argv, "001.png")
    pd.testing.assert_frame_equal(_rows(out), before)
    # --overwrite removes what runs write, never other files
    (out / "regime=foo").mkdir()
    (out / "regime=foo" / "keep.txt").write_text("mine")
    (out / "regime=whole" / "notes.txt").write_text("mine too")
    _ok(capsys, _collect_argv(ckpt, data, out, "--regimes", "whole", "--overwrite"))
    assert (out / "regime=foo" / "keep.txt").read_text() == "mine"
    assert (out / "regime=whole" / "notes.txt").read_text() == "mine too"
    assert not (out / "regime=train").exists()
    assert set(_rows(out)["regime"]) == {"whole"}


def test_resume_knows_its_data_and_its_part_files(tmp_path, ckpt, data, capsys):
    """Item 2: --resume after an image was added reported '1 new part, 2 already
    complete' (one image twice, one missing). Item 3: --resume over a truncated part file
    said 'already complete' and left the store unreadable. A checkpoint named by another
    relative path was refused although its sha256 matches."""
    import os
    import shutil

    import pandas as pd

    mine = tmp_path / "d"
    shutil.copytree(data, mine)
    out = tmp_path / "s"
    argv = _collect_argv(ckpt, mine, out, "--regimes", "whole,tlc")
    _ok(capsys, argv)
    before = _rows(out)
    from tlc_probe.store import read_meta

    meta = read_meta(next(out.glob("regime=tlc/part-*.parquet")))
    assert "samples" not in meta and len(meta["samples_sha256"]) == 64  # footers stay small
    for sub in ("input", "target"):  # a third image, sorted between the two
        shutil.copy(mine / sub / "000.png", mine / sub / "0005.png")
    _fails(capsys, argv + ["--resume"], "1 added ['0005']")
    for sub in ("input", "target"):
        (mine / sub / "0005.png").unlink()
    (mine / "input" / "001.png").write_bytes((mine / "input" / "000.png").read_bytes())
    _fails(capsys, argv + ["--resume"], "changed on disk ['001']")
    shutil.copy(data / "input" / "001.png", mine / "input" / "001.png")
    os.utime(mine / "input" / "001.png", ns=(0, (data / "input" / "001.png").stat().st_mtime_ns))
    # no difference left: the same checkpoint by another relative path resumes
    part = sorted(out.glob("regime=tlc/part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])  # truncated
    cwd = os.getcwd()
    try:
        os.chdir(ckpt.parent)
        argv_rel = [a if a != str(ckpt) else f"./{ckpt.name}" for a in argv]
        _ok(capsys, argv_rel + ["--resume"])
    finally:
        os.chdir(cwd)
    pd.testing.assert_frame_equal(_rows(out), before)


def test_a_store_from_before_the_sample_record_resumes_with_a_warning(tmp_path, ckpt, data, capsys):
    import json

    import pandas as pd

    out = tmp_path / "s"
    argv = _collect_argv(ckpt, data, out, "--regimes", "whole")
    _ok(capsys, argv)
    before = _rows(out)
    run = json.loads((out / "_run.json").read_text())
    for key in ("samples", "samples_sha256"):
        run.pop(key)
    (out / "_run.json").write_text(json.dumps(run))
    next(out.glob("regime=whole/part-*.parquet")).unlink()
    with pytest.warns(RuntimeWarning, match="did not record its samples"):
        _ok(capsys, argv + ["--resume"])
    pd.testing.assert_frame_equal(_rows(out), before)


def test_resume_refusal_names_only_what_differs(tmp_path, ckpt, data, capsys):
    """Resume refusals dumped the whole configuration dict."""
    out = tmp_path / "s"
    _ok(capsys, _collect_argv(ckpt, data, out, "--regimes", "whole"))
    line = _fails(
        capsys,
        _collect_argv(ckpt, data, out, "--regimes", "whole", "--resume", "--positions", "4"),
        "config.positions: 3 -> 4",
    )
    assert "crop_batch" not in line and len(line) < 400


def test_two_runs_are_never_pooled(tmp_path, ckpt, data, capsys):
    """Item 4: read_stats / shift / plot on a parent folder pooled two runs of one model
    and task (n_ref 32 -> 64, KL 5.506 -> 5.393)."""
    import shutil

    from tlc_probe.store import SiteIndex, read_stats

    parent = tmp_path / "runs"
    _ok(capsys, _collect_argv(ckpt, data, parent / "a", "--regimes", "train,whole"))
    shutil.copytree(parent / "a", parent / "b")
    for reader in (read_stats, SiteIndex):
        with pytest.raises(ValueError, match="copies of one run"):
            reader(parent)
        with pytest.raises(ValueError, match="copies of one run"):
            reader([parent / "a", parent / "b"])
    _fails(capsys, ["shift", parent, "--out", tmp_path / "sh"], "copies of one run")
    _fails(capsys, ["plot", parent, "--out", tmp_path / "pl"], "copies of one run")
    shutil.rmtree(parent / "b")
    _ok(capsys, _collect_argv(ckpt, data, parent / "b", "--regimes", "whole", "--fast"))
    _fails(capsys, ["shift", parent, "--out", tmp_path / "sh"], "other settings")
    assert len(read_stats(parent / "a")) > 0  # each alone is fine
    # stores named like Hive folders are still two stores
    shutil.move(parent / "a", parent / "lr=1")
    shutil.move(parent / "b", parent / "lr=2")
    with pytest.raises(ValueError, match="other settings"):
        read_stats(parent)
    # stores of other sites of one model combine: nothing would be pooled
    split = tmp_path / "split"
    _ok(
        capsys,
        _collect_argv(ckpt, data, split / "a", "--regimes", "whole", "--sites", "encoders*"),
    )
    _ok(capsys, _collect_argv(ckpt, data, split / "b", "--regimes", "whole", "--sites", "middle*"))
    both = read_stats(split)
    assert len(both) == len(read_stats(split / "a")) + len(read_stats(split / "b"))


def test_reproduce_refuses_a_folder_with_old_outputs(tmp_path, capsys):
    """Item 5: reproduce into an existing results folder mixed old and new outputs."""
    from tlc_probe.jobs.reproduce import prepare_out

    out = tmp_path / "r"
    (out / "bench" / "old").mkdir(parents=True)
    (out / "REPORT.md").write_text("old")
    (out / "mine.txt").write_text("keep")
    _fails(capsys, ["reproduce", "--quick", "--out", out], "--overwrite")
    assert (out / "REPORT.md").exists() and (out / "bench" / "old").exists()
    prepare_out(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    (out / "figures").mkdir()  # the user's own, beside no main job's outputs
    with pytest.raises(FileExistsError, match="no main job wrote"):
        prepare_out(out, overwrite=True)
    assert (out / "figures").is_dir()


def test_flags_replace_parameter_names_only():
    """train's FLAGS rewrote every 'out', 'batch', 'seed' in any message."""
    import importlib

    from tlc_probe.cli import train

    error_line = importlib.import_module("tlc_probe.cli.main").error_line
    assert error_line(train, RuntimeError("CUDA out of memory")) == "CUDA out of memory"
    assert error_line(train, ValueError("iters must be >= 1, got 0")).startswith("--iters must")


def test_bad_settings_are_one_line_before_any_work(tmp_path, ckpt, data, capsys):
    """Item 8 and the tracebacks: each of these exited 0 with nothing done, or printed a
    traceback (exit 1), or an unclear message."""
    out = tmp_path / "o"
    ck = str(ckpt)
    _fails(
        capsys, ["collect", "--checkpoint", ck, "--out", out, "--n-per-photo", "0"], "--n-per-photo"
    )
    _fails(
        capsys,
        ["collect", "--checkpoint", ck, "--out", out, "--n-per-photo", "-1"],
        "--n-per-photo",
    )
    _fails(capsys, _collect_argv(ckpt, data, out, "--depths", "garbage"), "--depths takes")
    for cmd in (
        ["collect", "--checkpoint", tmp_path, "--out", out],
        ["bench", "--checkpoint", tmp_path],
        ["evaluate", tmp_path],
    ):
        _fails(capsys, cmd, "not a file")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 4)
    _fails(capsys, ["evaluate", tmp_path / "random.pt"], "not a PyTorch checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    _fails(capsys, ["evaluate", tmp_path / "empty.pt"], "is empty")
    from tlc_probe.store import read_checkpoint, save_checkpoint

    sd, meta = read_checkpoint(ckpt)
    from tlc_probe.models import build

    model = build("nafnet", "tiny")
    save_checkpoint(model, tmp_path / "neg.pt", train_size=TS, task="deblur")
    obj = torch.load(tmp_path / "neg.pt", weights_only=True)
    obj["meta"]["train_size"] = -5
    torch.save(obj, tmp_path / "neg.pt")
    _fails(
        capsys,
        ["collect", "--checkpoint", tmp_path / "neg.pt", "--out", out],
        "train_size must be >= 1",
    )
    # GoPro sequence without sharp/
    (tmp_path / "gopro" / "test" / "seq1" / "blur").mkdir(parents=True)
    _fails(
        capsys,
        [
            "collect",
            "--checkpoint",
            ck,
            "--data",
            tmp_path / "gopro",
            "--layout",
            "gopro",
            "--regimes",
            "whole",
            "--out",
            out,
        ],
        "sharp",
    )
    # a text file named .png
    txt = tmp_path / "txt"
    for sub in ("input", "target"):
        (txt / sub).mkdir(parents=True)
        (txt / sub / "a.png").write_text("hello")
    _fails(
        capsys,
        ["collect", "--checkpoint", ck, "--data", txt, "--regimes", "whole", "--out", out],
        "a.png",
    )
    assert not out.exists(), "nothing may be written before the error"
    for flags, says in (
        (["--sizes", "0x0"], "--sizes"),
        (["--sizes=-64x-64"], "--sizes"),
        (["--repeats", "abc"], "invalid int value"),
        (["--overlaps", "-4"], "--overlaps"),
        (["--overlaps", str(TS)], "--overlaps"),
        (["--repeats", "-1"], "--repeats"),
        (["--repeats", "0"], "--repeats"),
    ):
        _fails(capsys, ["bench", "--checkpoint", ck, "--quick", "--out", out, *flags], says)
    for flags, says in (
        (["--iters", "0"], "--iters must be >= 1"),
        (["--val-every", "0"], "--val-every must be >= 1"),
        (["--patch", "0"], "--patch must be >= 1"),
        (["--batch", "0"], "--batch must be >= 1"),
    ):
        _fails(
            capsys,
            ["train", "--model", "nafnet", "--task", "deblur", "--out", tmp_path / "t.pt", *flags],
            says,
        )
    _fails(
        capsys,
        ["train", "--model", "nafnet", "--task", "deblur", "--out", tmp_path, "--iters", "1"],
        "is a folder",
    )
    assert not (tmp_path / "t.pt").exists()
    fake = tmp_path / "fake.parquet"
    import pandas as pd

    pd.DataFrame({"a": [1, 2]}).to_parquet(fake)
    _fails(capsys, ["plot", fake, "--out", tmp_path / "p"], "fake.parquet")


def test_stats_only_checks(tmp_path, ckpt, data, capsys):
    """plot --sites naming no site was ignored."""
    out = tmp_path / "s"
    _ok(capsys, _collect_argv(ckpt, data, out, "--regimes", "train,whole"))
    _fails(capsys, ["plot", out, "--out", tmp_path / "p", "--sites", "nosuch"], "nosuch")


@pytest.mark.parametrize("where", ["file", "below_file", "unwritable"])
def test_an_unwritable_out_fails_before_any_work(tmp_path, ckpt, data, capsys, where):
    """--out that is a file, below a file or read-only failed only after computing
    everything (shift, plot, bench) or with a traceback (collect, reproduce)."""
    stats = tmp_path / "s"
    _ok(capsys, _collect_argv(ckpt, data, stats, "--regimes", "train,whole"))
    (tmp_path / "f").write_text("a file")
    out = {
        "file": tmp_path / "f",
        "below_file": tmp_path / "f" / "sub",
        "unwritable": "/proc/tlc-probe-test",  # root may write anywhere else
    }[where]
    for argv in (
        _collect_argv(ckpt, data, out, "--regimes", "whole"),
        ["shift", stats, "--out", out],
        ["plot", stats, "--out", out],
        ["bench", "--checkpoint", ckpt, "--quick", "--out", out],
        ["reproduce", "--quick", "--out", out],
        ["reliance", ckpt, "--out", out],
    ):
        _fails(capsys, argv, str(out))
