"""Everything that lives on disk: the Parquet statistics store (schema, atomic part files,
run metadata, reading), checkpoints, figures, and atomic writes.

Exported here: what a user reads and loads (statistics, run metadata, checkpoints, the
shipped ones). The write side — part files, ``_run.json``, atomic writes, figure files —
is for the jobs and stays in its modules (:mod:`tlc_probe.store.parts`,
:mod:`tlc_probe.store.atomic`, :mod:`tlc_probe.store.figures`)."""

from .checkpoint import (
    build_from_checkpoint,
    load_checkpoint,
    model_label,
    read_checkpoint,
    save_checkpoint,
)
from .parts import read_meta, read_run_json
from .read import SiteIndex, SitePiece, iter_sites, read_site, read_stats, site_groups
from .schema import COLUMNS, STATS_SCHEMA
from .shipped import CHECKPOINTS_ENV, checkpoint_dir, resolve_checkpoint, shipped_checkpoints

__all__ = [
    "CHECKPOINTS_ENV",
    "COLUMNS",
    "STATS_SCHEMA",
    "SiteIndex",
    "SitePiece",
    "build_from_checkpoint",
    "checkpoint_dir",
    "iter_sites",
    "load_checkpoint",
    "model_label",
    "read_checkpoint",
    "read_meta",
    "read_run_json",
    "read_site",
    "read_stats",
    "resolve_checkpoint",
    "save_checkpoint",
    "shipped_checkpoints",
    "site_groups",
]
