"""Inference-scheme benchmark: seam index on constructed images, tiles, table contents."""

import hashlib
import math

import numpy as np
import pytest
import torch

from tlc_probe import tiled_inference
from tlc_probe.jobs.bench import CSV_COLUMNS, PER_IMAGE_COLUMNS, bench, seam_outputs, window_sweep
from tlc_probe.jobs.render import table_a1
from tlc_probe.metrics import seam_index
from tlc_probe.models import build
from tlc_probe.schemes import default_overlaps, make_scheme
from tlc_probe.store import load_checkpoint, save_checkpoint
from tlc_probe.tiling import tile_edges
from tlc_probe.tlc.convert import backend
from tlc_probe.viz import seam_crops_figure


def _smooth(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([torch.sin(3 * yy + c) * torch.cos(2 * xx - c) for c in range(3)])
    return 0.5 + 0.3 * base + 0.02 * torch.rand(3, h, w, generator=g)


def test_tile_edges_are_the_tile_borders():
    # 100 px, tile 32, overlap 8: starts 0, 24, 48, 68 -> edges 24, 32, 48, 56, 68, 80
    assert tile_edges(100, 32, 8) == [24, 32, 48, 56, 68, 80]
    assert tile_edges(32, 32, 0) == []


def test_seam_index_about_one_without_seam_and_large_with_one():
    h, w, tile, overlap = 160, 224, 32, 8
    target = _smooth(h, w)
    g = torch.Generator().manual_seed(1)
    clean = target + 0.03 * torch.randn(3, h, w, generator=g)  # residual without structure
    assert abs(seam_index(clean, target, tile, overlap) - 1) < 0.1
    # a random offset per cell between tile edges, as per-tile statistics would give
    ey, ex = [0, *tile_edges(h, tile, overlap), h], [0, *tile_edges(w, tile, overlap), w]
    offsets = 0.04 * torch.randn(len(ey) - 1, len(ex) - 1, generator=g)

    def with_cells(img, shift):
        out = img.clone()
        for i in range(len(ey) - 1):
            for j in range(len(ex) - 1):
                out[:, ey[i] + shift : ey[i + 1] + shift, ex[j] + shift : ex[j + 1] + shift] += (
                    offsets[i, j]
                )
        return out

    on_edges = seam_index(with_cells(clean, 0), target, tile, overlap)
    assert on_edges > 1.5
    # the same jumps 4 px off the tile edges are not seams of these tiles
    off_edges = seam_index(with_cells(clean, 4), target, tile, overlap)
    assert off_edges < 1.3 < on_edges


def test_seam_index_nan_when_no_edges():
    x = _smooth(32, 32)
    assert math.isnan(seam_index(x, x * 0.9, 32, 8))


def test_identity_model_tiles_overlap_zero_is_exact_and_seamless():
    x = _smooth(96, 160, seed=3)[None]
    target = _smooth(96, 160, seed=4)
    out = tiled_inference(lambda t: t, x, tile=32, overlap=0)
    assert torch.equal(out, x)
    assert abs(seam_index(out[0], target, 32, 0) - 1) < 0.15


def test_default_overlaps_are_the_paper_fractions():
    assert default_overlaps(256) == [16, 128]
    assert default_overlaps(64) == [4, 32]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("b") / "nafnet-tiny-deblur.pt"
    save_checkpoint(build("nafnet", "tiny"), path, train_size=64, task="deblur")
    return path


@pytest.mark.slow
def test_bench_table_has_every_scheme_and_size(ckpt):
    df = bench(ckpt, sizes=[(72, 96)], repeats=1, n_photos=1, progress=False)
    assert tuple(df.columns) == CSV_COLUMNS
    schemes = ["whole", "tlc", "tlc-fast", "tiles-4", "tiles-32"]
    for size in ("test", "72x96"):
        assert df[df.image_size == size]["scheme"].tolist() == schemes
    test = df[df.image_size == "test"]
    assert np.isfinite(test["psnr"]).all() and (test["ssim"] <= 1).all()
    assert np.isfinite(test["seam_index"]).all()
    assert df[df.image_size == "72x96"]["psnr"].isna().all()
    whole = df[df.scheme == "whole"]
    assert np.allclose(whole["time_ratio"], 1.0) and np.allclose(whole["tile_pixel_ratio"], 1.0)
    tiles = df[(df.image_size == "72x96") & (df.scheme == "tiles-32")].iloc[0]
    # 72 x 96, tile 64, overlap 32: starts (0, 8) x (0, 32), 4 tiles of 64 x 64
    assert tiles["tile_pixel_ratio"] == pytest.approx(4 * 64 * 64 / (72 * 96))
    md = table_a1(df)
    assert md.count("\n") == 1 + len(df) and "| patches (test) | 32 |" in md


def test_bench_runs_the_schemes_named_and_tlc_takes_the_fused_path(ckpt):
    names = ["tlc", "tlc-fast", "tlc"]  # whole comes first anyway, a repeat once
    df = bench(ckpt, sizes=[], repeats=1, n_photos=1, progress=False, schemes=names)
    assert df["scheme"].tolist() == ["whole", "tlc", "tlc-fast"]
    assert df["tlc"].tolist() == ["no", "exact", "fast"]
    assert "| yes |" in table_a1(df) and "| yes (fast) |" in table_a1(df)
    model = build("nafnet", "tiny").eval()
    net = make_scheme("tlc", model, 32).run
    assert any(getattr(m, "fused_head", False) for m in net.modules())
    with backend("plain"):
        plain = make_scheme("tlc", model, 32).run
    x = torch.rand(1, 3, 61, 75)
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x), rtol=1e-5, atol=1e-6)
    for gone in ("tlc-nope", "tlc-grid", "tlc-valid", "tlc-fused"):
        with pytest.raises(ValueError, match="unknown scheme"):
            bench(ckpt, sizes=[], repeats=1, n_photos=1, progress=False, schemes=[gone])


def test_window_sweep_rows_and_global_limit(ckpt):
    df = window_sweep(ckpt, ratios=(1.0, 1.5), n_photos=1, progress=False)
    assert df["ratio"].tolist() == [1.0, 1.5, math.inf]
    assert df["base_size"].tolist()[:2] == [64, 96]
    assert np.isfinite(df["psnr"]).all()


def test_seam_crops_without_a_tile_edge_centre_on_the_photo(tmp_path):
    # Tiles larger than the photo: no edge to centre the crop on, no seam index.
    torch.manual_seed(0)
    path = tmp_path / "big-tiles.pt"
    save_checkpoint(
        build("nafnet", "tiny"), path, train_size=656, task="deblur"
    )  # photo 0: 427 x 640
    fig = seam_crops_figure(**seam_outputs(path, overlaps=[0]))
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles[0].startswith("whole") and all("seam index nan" in t for t in titles)


def test_per_image_psnr_and_the_paired_difference_to_whole(ckpt):
    df, each = bench(ckpt, sizes=[], repeats=1, progress=False, schemes=["tlc"], per_image=True)
    assert tuple(each.columns) == PER_IMAGE_COLUMNS and set(each["test_set"]) == {"photos"}
    n = each["image"].nunique()
    assert n == 3 and len(each) == 2 * n  # every test photo, whole and tlc
    wide = each.pivot(index="image", columns="scheme", values="psnr")
    tlc = df[df.scheme == "tlc"].iloc[0]
    # the hand-made paired difference, image by image
    assert tlc["dpsnr"] == pytest.approx(float((wide["tlc"] - wide["whole"]).mean()))
    assert tlc["n_images"] == n and np.isnan(tlc["p_wilcoxon"])  # fewer than 6 images
    assert tlc["dpsnr_lo"] <= tlc["dpsnr_hi"]
    assert df[df.scheme == "whole"][["dpsnr", "dpsnr_lo", "dpsnr_hi"]].isna().all(axis=None)


def test_a_plan_adds_the_tuned_scheme_and_is_checked_against_the_checkpoint(ckpt, tmp_path):
    from tlc_probe import Plan, convert, tlc_windows
    from tlc_probe.store import build_from_checkpoint
    from tlc_probe.tlc.plan import uniform_windows

    model, _meta = build_from_checkpoint(ckpt)
    features = {w["name"]: tuple(w["feature_size"]) for w in tlc_windows(convert(model, 64))}
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    plan = Plan(uniform_windows(features, 64, 1.5), train_size=64, checkpoint_sha256=digest)
    df = bench(ckpt, sizes=[], repeats=1, n_photos=1, progress=False, schemes=["tlc"], plan=plan)
    assert df["scheme"].tolist() == ["whole", "tlc", "tlc-tuned"]
    tuned, tlc = (df[df.scheme == s].iloc[0] for s in ("tlc-tuned", "tlc"))
    assert tuned["tlc"] == "tuned" and tuned["psnr"] == tlc["psnr"]  # the uniform plan is TLC
    assert "yes (tuned windows)" in table_a1(df)
    other = Plan(plan.windows, train_size=64, checkpoint_sha256="0" * 64)
    with pytest.raises(ValueError, match="not this one"):
        bench(ckpt, sizes=[], repeats=1, n_photos=1, progress=False, plan=other)
    with pytest.raises(ValueError, match="needs a window plan"):
        bench(ckpt, sizes=[], repeats=1, n_photos=1, progress=False, schemes=["tlc-tuned"])


def test_scored_schemes_are_taken_as_given_and_not_run_again(ckpt):
    # whole and tlc "scored" elsewhere (the main job: collect's own passes): hand-made
    # numbers go into the table and the paired difference; the network never sees the
    # test photos for those schemes
    from tlc_probe.jobs.images import ImageSource
    from tlc_probe.jobs.subject import load_subject
    from tlc_probe.metrics.image import psnr

    subject = load_subject(ckpt)
    source = ImageSource(seed=0).test_items(subject.task, None)
    items = [source[i] for i in range(len(source))]
    fake = {(it["id"], "whole"): (10.0 + i, 0.5, 1.0) for i, it in enumerate(items)}
    fake |= {(it["id"], "tlc"): (11.0 + 2 * i, 0.6, 1.1) for i, it in enumerate(items)}
    shapes = []
    hook = subject.model.register_forward_pre_hook(lambda _m, a: shapes.append(a[0].shape[-2:]))
    try:
        df, each = bench(
            subject,
            sizes=[],
            repeats=1,
            progress=False,
            schemes=["tlc", "tiles-0"],
            per_image=True,
            scored=fake,
        )
    finally:
        hook.remove()
    photo_sizes = {tuple(it["input"].shape[-2:]) for it in items}
    assert not photo_sizes & {tuple(s) for s in shapes}  # only tiles and the warm-up ran
    rows = {r.scheme: r for r in df.itertuples()}
    assert rows["whole"].psnr == pytest.approx(11.0) and rows["tlc"].psnr == pytest.approx(13.0)
    assert rows["tlc"].dpsnr == pytest.approx(2.0)  # (1 + 2 + 3) / 3 over the pairs
    assert math.isnan(rows["whole"].time_s) and math.isnan(rows["tiles-0"].time_ratio)
    tiles = each[each.scheme == "tiles-0"].set_index("image")["psnr"]
    net = subject.model
    with torch.no_grad():  # the tiles were run and scored: PSNR of tiled inference by hand
        for it in items:
            out = tiled_inference(net, it["input"][None], tile=subject.train_size, overlap=0)
            assert tiles[it["id"]] == pytest.approx(psnr(out[0].clamp(0, 1), it["target"]))
    want = float(np.mean([tiles[it["id"]] - 10.0 - i for i, it in enumerate(items)]))
    assert rows["tiles-0"].dpsnr == pytest.approx(want)
    with pytest.raises(ValueError, match="scored has no tlc output"):
        bench(
            subject,
            sizes=[],
            repeats=1,
            progress=False,
            schemes=["tlc"],
            scored={k: v for k, v in fake.items() if k != (items[1]["id"], "tlc")},
        )


def test_first_outputs_feed_the_seam_crops_without_a_second_run(ckpt):
    from tlc_probe.jobs.images import ImageSource

    first = {}
    bench(
        ckpt, sizes=[], repeats=1, n_photos=1, progress=False, schemes=["tlc"], first_outputs=first
    )
    assert set(first) == {"whole", "tlc"}
    item = ImageSource(seed=0).test_items("deblur", 1)[0]
    model = build("nafnet", "tiny")
    load_checkpoint(model, ckpt)
    with torch.no_grad():  # the kept output is the first test image's, as run by hand
        want = model.eval()(item["input"][None])[0].clamp(0, 1)
    torch.testing.assert_close(first["whole"], want, rtol=1e-5, atol=1e-5)
    marker = torch.full_like(want, 0.25)  # a known output is drawn as given, not re-run
    crops = seam_outputs(ckpt, overlaps=[8], known={"whole": marker})
    assert torch.equal(crops["outputs"]["whole"][0], marker)
    assert not torch.equal(crops["outputs"]["tlc"][0], marker)
