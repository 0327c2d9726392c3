"""Where a run's images come from: the bundled photos, the generated dead-leaves test set,
or a user's paired folder.

An :class:`ImageSource` is the one description every job that runs images takes
(collect, bench, reliance, evaluate, the figures, reproduce), built by the CLI from the
same options (``--data``, ``--layout``, ``--train-data``, ``--seed``,
``--n-per-photo``). Its test images are read lazily, one at a time: a GoPro test split
(1111 images of 720 x 1280) is never held in memory at once.

Test sets, by name (:meth:`ImageSource.of`, the CLI's ``--test-set``): ``photos`` (the
bundled photos), ``synthetic`` (:func:`~tlc_probe.data.synthetic_pairs`: 12 dead-leaves
scenes of 360 x 640 from the synthetic part of the training distribution, whose train
regime draws from the same generator, so that content shift is zero by construction) or
a folder.

Layouts of a folder (:class:`tlc_probe.data.PairedFolder`)::

    gopro:  ROOT/test/<sequence>/blur/<frame>.png  with  ROOT/test/<sequence>/sharp/<frame>.png
            ROOT/train/...  (same form; the train regime's crops come from it when present)
    sots:   ROOT/hazy/<id>_<k>_<beta>.png  with  ROOT/clear/<id>.png
    pairs:  ROOT/input/<name>  with  ROOT/target/<name>

Example::

    from tlc_probe.jobs import ImageSource

    gopro = ImageSource("GoPro", layout="gopro")
    items = gopro.test_items("deblur", n=3)    # lazy: gopro.test_items(...)[i] reads image i
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import DeadLeavesPairs, PairedFolder, SyntheticPairs, synthetic_pairs
from ..data.datasets import LAYOUTS, SYNTHETIC_IMAGES
from ..sizes import as_int


class Items(Sequence):
    """The first ``n`` items of a dataset as a read-only sequence; ``items[i]`` reads item
    ``i`` ({"input", "target": (3, H, W), "id"}) when asked. With ``cache`` (a shared
    dict, for small sets such as the bundled photos, whose degradation is made on each
    access) an item is made once and kept."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        n: int | None = None,
        cache: dict[int, dict] | None = None,
    ) -> None:
        self.dataset = dataset
        self.cache = cache
        total = len(dataset)  # type: ignore[arg-type]
        self.n = total if n is None else max(0, min(int(n), total))

    def _get(self, i: int) -> dict:
        if self.cache is None:
            return self.dataset[i]
        if i not in self.cache:
            self.cache[i] = self.dataset[i]
        return self.cache[i]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self._get(i % self.n)

    def __iter__(self) -> Iterator[dict]:
        for i in range(self.n):
            yield self._get(i)


@dataclass(frozen=True)
class ImageSource:
    """The test (and training) images of a run.

    ``data``: a paired folder of ``layout`` (:data:`~tlc_probe.data.datasets.LAYOUTS`;
    for ``gopro`` its ``test`` split), or None for the bundled photos degraded for the
    task (``n_per_photo`` degradations of each test photo, seed ``seed``).
    ``train_data``: a folder of the same layout for the train regime's crops (default:
    the GoPro ``train`` split of ``data`` when it exists; the bundled training pool
    without ``data``).
    ``synthetic``: the generated test set instead of the photos
    (:func:`~tlc_probe.data.synthetic_pairs` of ``seed``; not with ``data``)."""

    data: str | Path | None = None
    layout: str = "pairs"
    train_data: str | Path | None = None
    seed: int = 0
    n_per_photo: int = 1
    synthetic: bool = False

    @classmethod
    def of(cls, test_set: str | Path, **kwargs: Any) -> ImageSource:
        """The ImageSource of a test set named ``photos``, ``synthetic`` or a folder's
        path (``kwargs``: the other fields, e.g. ``layout``, ``train_data``, ``seed``)."""
        if str(test_set) == "photos":
            return cls(None, **kwargs)
        if str(test_set) == "synthetic":
            return cls(None, **kwargs, synthetic=True)
        return cls(test_set, **kwargs)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        as_int(self.seed, "seed", minimum=0)
        as_int(self.n_per_photo, "n_per_photo", minimum=1)
        if self.train_data is not None and self.data is None:
            raise ValueError("train_data= needs data= (the test folder of the same layout)")
        if self.synthetic and self.data is not None:
            raise ValueError("synthetic=True is the generated test set: not with data=")
        for what, folder in (("data", self.data), ("train_data", self.train_data)):
            if folder is not None and not Path(folder).is_dir():
                raise FileNotFoundError(f"{what} {folder}: no such folder")

    @property
    def _gopro_train(self) -> bool:
        """A GoPro folder with its own train split (the train regime's default)."""
        return self.layout == "gopro" and (Path(self.data) / "train").is_dir()

    @property
    def bundled(self) -> bool:
        """True for the bundled photos and the generated set (images made here)."""
        return self.data is None

    def test_set(self, task: str) -> torch.utils.data.Dataset:
        """The test images degraded for ``task`` (bundled, generated) or the folder's
        test pairs."""
        if self.synthetic:
            return synthetic_pairs(task, "test", self.seed)
        if self.data is None:
            return SyntheticPairs(task, split="test", n_per_photo=self.n_per_photo, seed=self.seed)
        return PairedFolder(self.data, self.layout, split="test")

    def test_items(self, task: str, n: int | None = None) -> Items:
        """The first ``n`` (all if None) test items, read lazily (:class:`Items`; the
        bundled photos, a few small images, are kept once made)."""
        return Items(self.test_set(task), n, cache={} if self.bundled else None)

    def train_set(
        self, task: str, train_config: dict[str, Any] | None = None
    ) -> torch.utils.data.Dataset | None:
        """The images of the train regime. Bundled: the training pool exactly as training
        made it (``n_per_photo``, ``seed`` and ``deadleaves`` of the checkpoint's
        ``train_config`` when known, else 4 per photo, seed 0, no dead leaves). A folder:
        ``train_data``, or the GoPro train split of ``data``, else None (no train regime
        can be collected). Generated: its train split (the same generator)."""
        if self.synthetic:
            return synthetic_pairs(task, "train", self.seed)
        if self.data is None:
            tc = train_config or {}
            seed = int(tc.get("seed", 0))
            train: torch.utils.data.Dataset = SyntheticPairs(
                task, split="train", n_per_photo=int(tc.get("n_per_photo", 4)), seed=seed
            )
            if n_leaves := int(tc.get("deadleaves", 0)):
                leaves = DeadLeavesPairs(task, n_leaves, int(tc.get("deadleaves_size", 384)), seed)
                train = torch.utils.data.ConcatDataset([train, leaves])
            return train
        if self.train_data is not None:
            return PairedFolder(self.train_data, self.layout, split="train")
        if self._gopro_train:
            return PairedFolder(self.data, self.layout, split="train")
        return None

    def describe(self, task: str | None, train_config: dict[str, Any] | None = None) -> str:
        """One line for the run metadata and the report: the test images and where the
        train regime's crops come from (``task`` None: images degraded for each task)."""
        what = task or "degraded per task"
        if self.synthetic:
            n = SYNTHETIC_IMAGES["test"]
            return f"{n} generated dead-leaves scenes of 360x640, {what} (seed {self.seed})"
        if self.data is None:
            tc = train_config or {}
            leaves = int(tc.get("deadleaves", 0))
            more = f", training pool + {leaves} dead-leaves images" if leaves else ""
            return f"bundled photos, {what} (seed {self.seed}, {self.n_per_photo} per photo){more}"
        # resolved: a resume may name the folder otherwise
        where = f"{self.layout} folder {Path(self.data).resolve()}"
        return where + (f", train {Path(self.train_data).resolve()}" if self.train_data else "")

    def describe_train(self, task: str, train_config: dict[str, Any] | None = None) -> str:
        """Where the train regime's crops come from, in words (for the run metadata)."""
        if self.synthetic:
            n = len(synthetic_pairs(task, "train", self.seed))
            return f"{n} dead-leaves scenes of the same generator (other seeds), {task}"
        if self.data is None:
            tc = train_config or {}
            leaves = int(tc.get("deadleaves", 0))
            how = "as its checkpoint records" if tc else "4 per photo, seed 0 (not recorded)"
            return f"the bundled training photos degraded for {task}, {how}" + (
                f", and {leaves} dead-leaves images" if leaves else ""
            )
        if self.train_data is not None:
            return f"{self.layout} folder {Path(self.train_data).resolve()} (train_data)"
        if self._gopro_train:
            return f"the train split {(Path(self.data) / 'train').resolve()}"
        return "none (no train regime: give train_data)"

    def label(self) -> str:
        """A short name of the test set: ``photos``, ``synthetic`` or the folder's name."""
        if self.synthetic:
            return "synthetic"
        return "photos" if self.data is None else Path(self.data).resolve().name
