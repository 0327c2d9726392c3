"""Everything that lives on disk: the Parquet statistics store (schema, atomic part files,
run metadata, reading), checkpoints, figures, and atomic writes."""

from .atomic import atomic_write, write_text
from .checkpoint import (
    atomic_save,
    build_from_checkpoint,
    load_checkpoint,
    model_label,
    read_checkpoint,
    save_checkpoint,
)
from .figures import save_figure
from .parts import (
    clear,
    clear_tmp,
    has_data,
    part_path,
    parts,
    read_meta,
    read_run_json,
    write_part,
    write_run_json,
)
from .read import SiteIndex, SitePiece, iter_sites, read_site, read_stats, site_groups
from .schema import COLUMNS, PART_SCHEMA, RUN_JSON, STATS_SCHEMA, STEP_PART_SCHEMA
from .shipped import CHECKPOINTS_ENV, checkpoint_dir, resolve_checkpoint, shipped_checkpoints

__all__ = [
    "CHECKPOINTS_ENV",
    "COLUMNS",
    "PART_SCHEMA",
    "RUN_JSON",
    "STATS_SCHEMA",
    "STEP_PART_SCHEMA",
    "SiteIndex",
    "SitePiece",
    "atomic_save",
    "atomic_write",
    "build_from_checkpoint",
    "checkpoint_dir",
    "clear",
    "clear_tmp",
    "has_data",
    "load_checkpoint",
    "model_label",
    "part_path",
    "parts",
    "read_checkpoint",
    "read_meta",
    "read_run_json",
    "iter_sites",
    "read_site",
    "read_stats",
    "resolve_checkpoint",
    "site_groups",
    "save_checkpoint",
    "save_figure",
    "shipped_checkpoints",
    "write_part",
    "write_run_json",
    "write_text",
]
