"""Folder layouts (GoPro, SOTS, input/target), image reading rules, synthetic pairs, patches."""

import numpy as np
import pytest
import skimage.io
import torch

from tlc_probe.data.datasets import (
    PairedFolder,
    SyntheticPairs,
    random_patches,
    read_image,
    whole_images,
)


def _png(path, h=12, w=16, channels=3, value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    a = (
        rng.integers(0, 256, shape, dtype=np.uint8)
        if value is None
        else np.full(shape, value, np.uint8)
    )
    skimage.io.imsave(str(path), a, check_contrast=False)
    return a


def test_gopro_layout(tmp_path):
    blur = _png(tmp_path / "test/GOPR0384_11_00/blur/000001.png", seed=1)
    sharp = _png(tmp_path / "test/GOPR0384_11_00/sharp/000001.png", seed=2)
    _png(tmp_path / "test/GOPR0384_11_05/blur/004042.png")
    _png(tmp_path / "test/GOPR0384_11_05/sharp/004042.png")
    _png(tmp_path / "train/GOPR0372_07_00/blur/000047.png")
    _png(tmp_path / "train/GOPR0372_07_00/sharp/000047.png")
    ds = PairedFolder(tmp_path, "gopro", split="test")
    assert [it[2] for it in ds.items] == ["GOPR0384_11_00/000001", "GOPR0384_11_05/004042"]
    item = ds[0]
    assert torch.equal(item["input"], torch.from_numpy(blur).permute(2, 0, 1).float() / 255)
    assert torch.equal(item["target"], torch.from_numpy(sharp).permute(2, 0, 1).float() / 255)
    assert len(PairedFolder(tmp_path, "gopro", split="train")) == 1
    _png(tmp_path / "test/GOPR0384_11_05/blur/004043.png")
    with pytest.raises(ValueError, match=r"1 unpaired.*004043"):
        PairedFolder(tmp_path, "gopro", split="test")


def test_sots_layout(tmp_path):
    _png(tmp_path / "clear/1400.png")
    _png(tmp_path / "clear/1401.png")
    for name in ("1400_1_0.04.png", "1400_2_0.1.png", "1401_3_0.2.png"):
        _png(tmp_path / "hazy" / name)
    ds = PairedFolder(tmp_path, "sots")
    assert sorted(it[2] for it in ds.items) == ["1400_1_0.04", "1400_2_0.1", "1401_3_0.2"]
    assert all(it[1].name == it[2].split("_")[0] + ".png" for it in ds.items)
    _png(tmp_path / "hazy/1402_1_0.1.png")
    with pytest.raises(ValueError, match=r"no clear/1402"):
        PairedFolder(tmp_path, "sots")


def test_pairs_layout_and_size_mismatch(tmp_path):
    _png(tmp_path / "input/a.png")
    _png(tmp_path / "target/a.png", h=13)
    ds = PairedFolder(tmp_path, "pairs")
    with pytest.raises(ValueError, match="size mismatch"):
        ds[0]
    with pytest.raises(ValueError, match="needs folder"):
        PairedFolder(tmp_path / "nothing", "pairs")
    with pytest.raises(ValueError, match="layout"):
        PairedFolder(tmp_path, "reside")


def test_read_image_rules(tmp_path):
    gray = _png(tmp_path / "g.png", channels=1)
    img = read_image(tmp_path / "g.png")
    assert img.shape == (3, 12, 16) and torch.equal(img[0], img[2])
    assert torch.equal(img[1], torch.from_numpy(gray).float() / 255)
    _png(tmp_path / "opaque.png", channels=4, value=255)
    assert read_image(tmp_path / "opaque.png").shape == (3, 12, 16)
    _png(tmp_path / "transparent.png", channels=4)
    with pytest.raises(ValueError, match="transparent"):
        read_image(tmp_path / "transparent.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(tmp_path / "broken.png")


def test_synthetic_pairs_are_deterministic_and_split_by_photo():
    ds = SyntheticPairs("derain", split="test", n_per_photo=2, seed=1)
    assert len(ds) == 6 and ds.items[0] == ("rocket", 0)
    a, b = ds[1], SyntheticPairs("derain", split="test", n_per_photo=2, seed=1)[1]
    assert a["id"] == "rocket#1" and torch.equal(a["input"], b["input"])
    assert not torch.equal(ds[0]["input"], ds[1]["input"])  # another seed per item
    assert {n for n, _ in SyntheticPairs("deblur").items} == {"astronaut", "coffee", "chelsea"}


def test_random_patches_are_aligned_and_augmented():
    class Fixed(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            x = torch.arange(3 * 20 * 30, dtype=torch.float32).view(3, 20, 30)
            return {"input": x, "target": x + 1, "id": "a"}

    patches = list(random_patches(Fixed(), 8, 40, seed=0))
    assert len(patches) == 40
    assert all(a.shape == (3, 8, 8) and torch.equal(b, a + 1) for a, b in patches)
    # Some patches are rotated/flipped: their pixel order differs from any plain crop.
    src = Fixed()[0]["input"]
    plain = {
        tuple(src[:, y : y + 8, x : x + 8].flatten().tolist()) for y in range(13) for x in range(23)
    }
    assert any(tuple(a.flatten().tolist()) not in plain for a, _ in patches)
    first = [a for a, _ in random_patches(Fixed(), 8, 3, seed=5)]
    again = [a for a, _ in random_patches(Fixed(), 8, 3, seed=5)]
    assert all(torch.equal(p, q) for p, q in zip(first, again, strict=True))
    with pytest.raises(ValueError, match="smaller than the 64-px patch"):
        next(random_patches(Fixed(), 64, 1))
    assert [it["id"] for it in whole_images(Fixed())] == ["a"]


def test_random_patches_load_each_item_once():
    calls = []

    class Counting(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            calls.append(i)
            return {"input": torch.rand(3, 16, 16), "target": torch.rand(3, 16, 16), "id": str(i)}

    list(random_patches(Counting(), 8, 50, seed=0))
    assert sorted(calls) == [0, 1]


def test_generated_items_are_made_once_and_handed_out_as_copies(monkeypatch):
    from tlc_probe.data import datasets
    from tlc_probe.data.datasets import DeadLeavesPairs

    calls = []
    real = datasets.degrade

    def counting(task, img, seed, depth=None):
        calls.append(seed)
        return real(task, img, seed, depth=depth)

    monkeypatch.setattr(datasets, "degrade", counting)
    datasets.GENERATED.clear()
    try:
        photos, leaves = SyntheticPairs("deblur", split="test"), DeadLeavesPairs("derain", 2, 48)
        a, b = photos[1], photos[1]
        c, d = leaves[0], DeadLeavesPairs("derain", 2, 48)[0]  # another object, same item
        assert len(calls) == 2  # one degradation per distinct item
        assert torch.equal(a["input"], b["input"]) and torch.equal(c["target"], d["target"])
        a["input"].zero_()  # a caller's change reaches no other caller
        assert torch.equal(photos[1]["input"], b["input"]) and b["input"].abs().sum() > 0
        # the kept item is the one a fresh generation makes (seed of item 1: 1)
        assert torch.equal(b["input"], real("deblur", b["target"], 1))
        assert not torch.equal(leaves[1]["input"], c["input"]) and len(calls) == 3
    finally:
        datasets.GENERATED.clear()


def test_generated_items_drop_the_least_recently_used_past_their_bytes():
    from tlc_probe.data.datasets import GeneratedItems

    made = []

    def maker(k):
        def make():
            made.append(k)
            return {"input": torch.full((10,), float(k)), "id": str(k)}  # 40 bytes

        return make

    store = GeneratedItems(100)  # two items fit
    for k in (1, 2, 1, 3):  # 3 evicts 2 (1 was used after 2)
        assert store.get(k, maker(k))["input"][0] == k
    assert made == [1, 2, 3] and len(store) == 2
    store.get(1, maker(1))
    store.get(2, maker(2))
    assert made == [1, 2, 3, 2]
    GeneratedItems(10).get(9, maker(9))  # larger than the store: made, not kept
