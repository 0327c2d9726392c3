"""One call that gives an analysis (a notebook, a script) its statistics store: a user's,
or the embedded default's, collected on first use."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..store.read import SiteIndex
from ..store.shipped import resolve_checkpoint
from .collect import CollectConfig, collect_checkpoint


def open_stats(
    stats_dir: str | Path | Sequence[str | Path] | None = None,
    *,
    checkpoints: Sequence[str] = ("hinet-tiny-deblur", "mprnet-tiny-deblur"),
    out_dir: str | Path = "results/notebooks/stats",
    n_images: int | None = 1,
    crops: int = 16,
    positions: int = 6,
    progress: bool = False,
) -> SiteIndex:
    """The :class:`~tlc_probe.store.read.SiteIndex` of a statistics store.

    Args:
        stats_dir: your statistics: the ``--out`` of ``tlc-probe collect``, a main job's
            output folder (its ``stats/``, all its models, is read) or ``stats/``
            itself, or a list of such folders. None: the
            embedded default, ``checkpoints`` (shipped names, without ``.pt``, or paths
            of tlc-probe checkpoints) collected into ``out_dir/<name>`` (completed, not
            redone, when already there) on ``n_images`` test photos with ``crops``
            training crops and ``positions`` TLC grid positions per axis.

    Returns:
        The index: ``list(index)`` are the (model, task, site) keys, and
        :func:`~tlc_probe.store.read.read_site` reads one site's rows.

    Raises:
        FileNotFoundError: ``stats_dir`` holds no statistics (the message says what to
            point at).
    """
    if stats_dir is not None:
        roots = [stats_dir] if isinstance(stats_dir, str | Path) else list(stats_dir)
        for r in roots:
            if not Path(r).exists():
                raise FileNotFoundError(
                    f"stats_dir {r}: no such folder (give a collect --out or a main job's results)"
                )
        # a main job's output folder: its statistics are under stats/
        roots = [Path(r) / "stats" if (Path(r) / "stats").is_dir() else r for r in roots]
        return SiteIndex(roots)
    out = Path(out_dir)
    cfg = CollectConfig(n_crops=crops, positions=positions)
    stores = []
    for name in checkpoints:
        path = resolve_checkpoint(name)
        store = out / path.stem
        collect_checkpoint(
            path, store, config=cfg, n_images=n_images, mode="resume", progress=progress
        )
        stores.append(store)
    return SiteIndex(stores)
