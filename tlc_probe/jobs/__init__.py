"""Jobs: the applications built from the layers below (collect, bench, train, evaluate,
figures, shift, reproduce) and their markdown. The CLI and the notebooks call these."""

from .bench import bench, bench_outputs, seam_outputs, window_sweep
from .collect import CollectConfig, CollectResult, collect, collect_checkpoint
from .distributed import Shard, shard_from_env
from .evaluate import held_out_items, held_out_psnr, held_out_scores, psnr_table, scheme_psnr
from .figures import qualitative, stats_figures
from .images import ImageSource
from .recorder import TrainingRecorder, read_quality
from .reliance import reliance, reliance_checkpoint, site_constants
from .render import markdown, table_a1
from .reproduce import reproduce
from .shift import (
    read_reliance,
    shift_outputs,
    shift_results,
    store_shift_table,
    write_shift,
    write_shift_results,
)
from .stores import open_stats
from .subject import Subject, load_subject, subject_from_model
from .train import TrainConfig, train

__all__ = [
    "CollectConfig",
    "CollectResult",
    "ImageSource",
    "Shard",
    "Subject",
    "TrainConfig",
    "TrainingRecorder",
    "bench",
    "bench_outputs",
    "collect",
    "collect_checkpoint",
    "held_out_items",
    "held_out_psnr",
    "held_out_scores",
    "load_subject",
    "markdown",
    "open_stats",
    "psnr_table",
    "qualitative",
    "read_quality",
    "read_reliance",
    "reliance",
    "reliance_checkpoint",
    "reproduce",
    "scheme_psnr",
    "seam_outputs",
    "shard_from_env",
    "shift_outputs",
    "shift_results",
    "site_constants",
    "stats_figures",
    "store_shift_table",
    "subject_from_model",
    "table_a1",
    "train",
    "window_sweep",
    "write_shift",
    "write_shift_results",
]
