"""Paired datasets: published folder layouts, the synthetic pairs, and patch sampling.

Every item is a dict ``{"input": (3, H, W), "target": (3, H, W), "id": str}`` of float32
tensors in [0, 1]. Images are read with scikit-image: 8- and 16-bit PNG/JPEG; grayscale
is converted to RGB (the channel repeated); RGBA is accepted only when the alpha channel
is fully opaque (it is dropped), otherwise refused — compositing on an arbitrary
background would invent content.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..sizes import as_pair
from .deadleaves import dead_leaves
from .photos import load_depth, load_photo, photo_names
from .synth import TASKS, degrade

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LAYOUTS = ("gopro", "sots", "pairs")


def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG file's header, None for any other file."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24]


def _read_png16(path: Path) -> np.ndarray:
    """A 16-bit PNG as an (H, W) or (H, W, C) uint16 array of the stored samples, every
    bit kept (pypng: Pillow, and so scikit-image, reduces 16-bit colour PNGs to 8 bits).
    The samples are taken as stored: an ``sBIT`` chunk (how many bits were significant
    before scaling to 16) does not shift them down. Unfiltered rows are fast (0.16 s for
    720 x 1280 RGB here); rows with PNG filters are undone in pure Python, much slower."""
    import png

    w, h, rows, info = png.Reader(filename=str(path)).read()
    planes = info["planes"]
    a = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, planes)
    return a[..., 0] if planes == 1 else a


def _unreadable(path: Path, error: Exception) -> str:
    """Why ``path`` could not be read, in words: Pillow's verdict when it cannot even
    identify the file (instead of a reader plug-in's installation hint)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            pass
    except UnidentifiedImageError:
        return "not an image file Pillow can identify"
    except OSError as e:
        return str(e)
    return str(error)


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a (3, H, W) float32 tensor in [0, 1] (see the module doc for
    grayscale / RGBA / bit depth; 16-bit PNGs keep all 16 bits); ``ValueError`` naming the
    file if it cannot be read."""
    import skimage.io

    path = Path(path)
    try:
        if path.is_file() and _png_bit_depth(path) == 16:
            a = _read_png16(path)
        else:
            a = np.asarray(skimage.io.imread(str(path)))
    except Exception as e:
        raise ValueError(f"cannot read image {path}: {_unreadable(path, e)}") from e
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported pixel type {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"{path}: expected an RGB image, got array of shape {a.shape}")
    if a.shape[2] == 4:
        if not np.all(a[..., 3] >= 1.0):
            raise ValueError(f"{path}: RGBA with transparent pixels is refused")
        a = a[..., :3]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"missing folder {folder}")
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def _pairs_by_name(inp: Path, tgt: Path, where: str) -> list[tuple[Path, Path, str]]:
    a, b = _images(inp), _images(tgt)
    unpaired = sorted(set(a) ^ set(b))
    if unpaired:
        raise ValueError(
            f"{len(unpaired)} unpaired file(s) in {where}: {unpaired[:5]} "
            f"(each {inp.name}/X needs {tgt.name}/X)"
        )
    return [(a[n], b[n], n) for n in sorted(a)]


def _sots_pairs(root: Path) -> list[tuple[Path, Path, str]]:
    hazy, clear = _images(root / "hazy"), _images(root / "clear")
    by_id = {Path(n).stem: p for n, p in clear.items()}
    pairs, bad = [], []
    for name, path in hazy.items():
        m = re.fullmatch(r"(\d+)_(\d+)_([0-9.]+)", Path(name).stem)
        if not m:
            bad.append(f"{name} (not <id>_<k>_<beta>)")
        elif m.group(1) not in by_id:
            bad.append(f"{name} (no clear/{m.group(1)}.*)")
        else:
            pairs.append((path, by_id[m.group(1)], Path(name).stem))
    if bad:
        raise ValueError(f"{len(bad)} unpaired hazy image(s) in {root}: {bad[:5]}")
    return pairs


class PairedFolder(torch.utils.data.Dataset):
    """Degraded/clean pairs from a folder in one of :data:`LAYOUTS`.

    * ``gopro``: ``root/<split>/<sequence>/{blur,sharp}/<frame>.png`` (``split`` 'train'
      or 'test'); ids ``<sequence>/<frame>``.
    * ``sots``: ``root/hazy/<id>_<k>_<beta>.png`` with ``root/clear/<id>.png``.
    * ``pairs``: ``root/input/X`` with ``root/target/X``.

    Missing folders, unpaired files (first five listed) and mismatched sizes raise
    ``ValueError``.
    """

    def __init__(self, root: str | Path, layout: str = "pairs", split: str = "test") -> None:
        root = Path(root)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; layouts: {LAYOUTS}")
        need = {
            "gopro": [root / split],
            "sots": [root / "hazy", root / "clear"],
            "pairs": [root / "input", root / "target"],
        }[layout]
        if missing := [str(p) for p in need if not p.is_dir()]:
            raise ValueError(f"{layout} layout needs folder(s) {missing}")
        if layout == "gopro":
            self.items = []
            for seq in sorted(p for p in (root / split).iterdir() if p.is_dir()):
                for a, b, n in _pairs_by_name(seq / "blur", seq / "sharp", str(seq)):
                    self.items.append((a, b, f"{seq.name}/{Path(n).stem}"))
        elif layout == "sots":
            self.items = _sots_pairs(root)
        else:
            self.items = [
                (a, b, Path(n).stem)
                for a, b, n in _pairs_by_name(root / "input", root / "target", str(root))
            ]
        if not self.items:
            raise ValueError(f"no image pairs under {root} ({layout} layout)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        a, b, name = self.items[i]
        x, y = read_image(a), read_image(b)
        if x.shape != y.shape:
            raise ValueError(
                f"size mismatch for {name}: {a} {tuple(x.shape)} vs {b} {tuple(y.shape)}"
            )
        return {"input": x, "target": y, "id": name}


class GeneratedItems:
    """Generated items (degraded bundled photos, dead-leaves pairs) kept in this process,
    so that the jobs of one run (collect, reliance, tuning, the bench, each checkpoint of a
    task) make each item once: making one costs 0.05-0.4 s, keeping it a few MB. Items are
    deterministic functions of their key; the least recently used go past ``max_bytes``.
    :meth:`get` returns a new dict of copies, so a caller may change what it gets."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, dict] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(item: dict) -> int:
        return sum(v.nbytes for v in item.values() if isinstance(v, torch.Tensor))

    def get(self, key: Hashable, make: Callable[[], dict]) -> dict:
        """The item of ``key``, made by ``make()`` the first time (copies of its tensors)."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
        if item is None:
            item = make()
            size = self._size(item)
            with self._lock:
                if key not in self._items and size <= self.max_bytes:
                    self._items[key] = item
                    self._bytes += size
                    while self._bytes > self.max_bytes:
                        _, old = self._items.popitem(last=False)
                        self._bytes -= self._size(old)
        return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in item.items()}

    def clear(self) -> None:
        """Forget every kept item."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)


def _generated_bytes() -> int:
    """1 GiB (the bundled training pools and the generated test set of the three tasks),
    or a sixteenth of the machine's memory where that is less."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return 1 << 30
    return int(min(1 << 30, memory // 16))


#: The process's :class:`GeneratedItems` (:func:`_generated_bytes`).
GENERATED = GeneratedItems(_generated_bytes())


class SyntheticPairs(torch.utils.data.Dataset):
    """Bundled photos degraded for ``task`` ('deblur' | 'derain' | 'dehaze').

    ``photos``: names (default: those of ``split``); ``n_per_photo`` differently seeded
    degradations of each; item ``i`` uses seed ``seed * 100003 + i`` and the photo's
    measured depth when it has one. Ids ``<photo>#<k>``. Images are made on first
    access and kept (:data:`GENERATED`).
    """

    def __init__(
        self,
        task: str,
        photos: Sequence[str] | None = None,
        split: str = "train",
        n_per_photo: int = 1,
        seed: int = 0,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; tasks: {TASKS}")
        self.task, self.seed = task, seed
        names = tuple(photos) if photos is not None else photo_names(split)
        self.items = [(n, k) for n in names for k in range(n_per_photo)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        name, k = self.items[i]
        s = self.seed * 100003 + i

        def make() -> dict:
            clean = load_photo(name)
            x = degrade(self.task, clean, s, depth=load_depth(name))
            return {"input": x, "target": clean, "id": f"{name}#{k}"}

        return GENERATED.get(("photo", self.task, name, k, s), make)


class DeadLeavesPairs(torch.utils.data.Dataset):
    """``n`` dead-leaves images (:func:`~tlc_probe.data.deadleaves.dead_leaves`, ``size`` px,
    an int for a square) degraded for ``task``; item ``i`` draws its image from seed
    ``seed * 100003 + first + i`` and its degradation from that seed + 50021 (haze: a
    synthetic depth). Ids ``deadleaves#<i>``; with a ``name``, ``<name>-<ii>`` (two
    digits at least), each its own image. Images are made on first access and kept
    (:data:`GENERATED`; the clean image of a seed serves every task)."""

    def __init__(
        self,
        task: str,
        n: int,
        size: int | tuple[int, int] = 384,
        seed: int = 0,
        *,
        first: int = 0,
        name: str | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; tasks: {TASKS}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.task, self.n, self.size, self.seed = task, n, size, seed
        self.first, self.name = first, name

    def __len__(self) -> int:
        return self.n

    def seeds(self) -> list[int]:
        """The dead-leaves seed of each item, in order."""
        return [self.seed * 100003 + self.first + i for i in range(self.n)]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        s = self.seed * 100003 + self.first + i
        size = as_pair(self.size, "size")
        name = f"deadleaves#{i}" if self.name is None else f"{self.name}-{i:02d}"

        def make() -> dict:
            clean = _leaves(size, s)
            return {"input": degrade(self.task, clean, s + 50021), "target": clean, "id": name}

        return GENERATED.get(("leaves", self.task, size, s, name), make)


@functools.lru_cache(maxsize=40)
def _leaves(size: tuple[int, int], seed: int) -> torch.Tensor:
    # the clean image serves every task and every job of a process (read-only)
    return dead_leaves(size, seed)


#: The generated test set (``test_set="synthetic"``): dead-leaves scenes, the synthetic
#: part of the shipped checkpoints' training distribution, at 360 x 640 (the paper's
#: image-to-crop ratio, 720 x 1280 against 256-px crops, for our 128-px crops).
SYNTHETIC_SIZE = (360, 640)
#: Images of each split of the generated set: ``test`` the evaluation images, ``train``
#: the train regime's images (the same generator, other seeds: the content link of the
#: shift then measures sampling noise only).
SYNTHETIC_IMAGES = {"test": 12, "train": 24}
#: The generated set's first dead-leaves seed: training draws ``seed * 100003 + i``
#: (photos' degradations and dead leaves alike; i below a few thousand), far below this
#: for any seed below 10 million (:func:`synthetic_pairs` refuses larger ones).
SYNTHETIC_FIRST_SEED = 1 << 40
#: Offset of the train split's seeds from the test split's.
SYNTHETIC_TRAIN_OFFSET = 1 << 20
MAX_SEED = 10_000_000


def synthetic_pairs(task: str, split: str = "test", seed: int = 0) -> DeadLeavesPairs:
    """The generated test set's ``split`` ('test' or 'train', :data:`SYNTHETIC_IMAGES`)
    for ``task``: (3, 360, 640) dead-leaves pairs degraded by the training pipeline,
    deterministic for ``seed``, their seeds disjoint from every seed training uses.
    Ids ``synthetic-<i>`` (test) and ``synthetic-train-<i>``."""
    if split not in SYNTHETIC_IMAGES:
        raise ValueError(f"split must be one of {tuple(SYNTHETIC_IMAGES)}, got {split!r}")
    if not 0 <= int(seed) < MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED}), got {seed}")
    first = SYNTHETIC_FIRST_SEED + (SYNTHETIC_TRAIN_OFFSET if split == "train" else 0)
    name = "synthetic" if split == "test" else "synthetic-train"
    n = SYNTHETIC_IMAGES[split]
    return DeadLeavesPairs(task, n, SYNTHETIC_SIZE, int(seed), first=first, name=name)


def draw_crop(
    dataset: torch.utils.data.Dataset,
    size: int,
    rng: np.random.Generator,
    cache: dict[int, dict],
    augment: bool = True,
    what: str | None = None,
) -> tuple[dict, int, int, Callable[[torch.Tensor], torch.Tensor]]:
    """Draw one random ``size`` x ``size`` crop of an item of ``dataset`` from ``rng`` (item,
    row, column, then with ``augment`` a 90-degree rotation and a flip, in that order).
    Items are loaded once into ``cache``. Returns (item, y, x, crop) where ``crop`` maps a
    (C, H, W) tensor of the item to its (C, size, size) crop, augmented the same way.
    Raises ``ValueError`` naming the item when it is smaller than the crop (``what``
    describes the size, default "the <size>-px patch")."""
    i = int(rng.integers(len(dataset)))
    if i not in cache:
        cache[i] = dataset[i]
    item = cache[i]
    _, h, w = item["input"].shape
    if h < size or w < size:
        raise ValueError(f"{item['id']} is {h}x{w}, smaller than {what or f'the {size}-px patch'}")
    y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    k, flip = (int(rng.integers(4)), bool(rng.integers(2))) if augment else (0, False)

    def crop(t: torch.Tensor) -> torch.Tensor:
        c = torch.rot90(t[:, y : y + size, x : x + size], k, (1, 2))
        return (c.flip(-1) if flip else c).contiguous()

    return item, y, x, crop


def random_patches(
    dataset: torch.utils.data.Dataset,
    size: int,
    n: int,
    seed: int = 0,
    augment: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` random aligned (input, target) ``size`` x ``size`` crops, each (3, size, size),
    from random items of ``dataset`` (:func:`draw_crop`); with ``augment`` a random flip
    and 90-degree rotation, the same for both. Items are loaded once and cached."""
    rng = np.random.default_rng(seed)
    cache: dict[int, dict] = {}
    for _ in range(n):
        item, _, _, crop = draw_crop(dataset, size, rng, cache, augment)
        yield crop(item["input"]), crop(item["target"])


def _item_sources(dataset: torch.utils.data.Dataset) -> list[tuple[torch.utils.data.Dataset, int]]:
    """(base dataset, index in it) of every item, in order, through ConcatDataset / Subset."""
    if isinstance(dataset, torch.utils.data.ConcatDataset):
        return [src for d in dataset.datasets for src in _item_sources(d)]
    if isinstance(dataset, torch.utils.data.Subset):
        flat = _item_sources(dataset.dataset)
        return [flat[i] for i in dataset.indices]
    return [(dataset, i) for i in range(len(dataset))]


def manifest(dataset: torch.utils.data.Dataset) -> list[list] | None:
    """What a dataset's items are, in order, for comparing two runs: one list per item,
    ``[id]`` for generated items (:class:`SyntheticPairs`, :class:`DeadLeavesPairs`,
    whose content follows from the id and the run settings) and ``[id, bytes, mtime_ns]``
    of the input and of the target file for :class:`PairedFolder`. ``None`` for a
    dataset of another class (nothing to compare). Reads no image."""
    out: list[list] = []
    for base, i in _item_sources(dataset):
        if isinstance(base, PairedFolder):
            a, b, name = base.items[i]
            sa, sb = a.stat(), b.stat()
            out.append([name, sa.st_size, sa.st_mtime_ns, sb.st_size, sb.st_mtime_ns])
        elif isinstance(base, SyntheticPairs):
            out.append([f"{base.items[i][0]}#{base.items[i][1]}"])
        elif isinstance(base, DeadLeavesPairs):
            out.append([f"deadleaves#{i}"])
        else:
            return None
    return out


def check_images(
    dataset: torch.utils.data.Dataset, min_size: int | None = None, progress: bool = False
) -> None:
    """Check, without decoding them, that every image file of ``dataset`` (its
    :class:`PairedFolder` parts; generated items need no check) opens as an image, that
    each input has its target's size, and that both sides are at least ``min_size``
    pixels; ``ValueError`` naming the first bad file. Pillow reads the headers and
    verifies the file's structure (PNG chunk checksums); a progress bar shows after 2 s."""
    from PIL import Image, UnidentifiedImageError

    files = [base.items[i] for base, i in _item_sources(dataset) if isinstance(base, PairedFolder)]
    bar = tqdm(files, desc="checking images", disable=not progress or not files, delay=2.0)
    for a, b, name in bar:
        sizes = []
        for path in (a, b):
            try:
                with Image.open(path) as im:
                    sizes.append(im.size)
                    im.verify()
            except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
                raise ValueError(f"cannot read image {path}: {e}") from None
        (wa, ha), (wb, hb) = sizes
        if (wa, ha) != (wb, hb):
            raise ValueError(f"size mismatch for {name}: {a} {ha}x{wa} vs {b} {hb}x{wb}")
        if min_size is not None and min(ha, wa) < min_size:
            raise ValueError(f"{name} is {ha}x{wa}, smaller than train_size {min_size}: {a}")


def whole_images(dataset: torch.utils.data.Dataset) -> Iterator[dict]:
    """The items of ``dataset`` in order, whole (for evaluation)."""
    for i in range(len(dataset)):
        yield dataset[i]
