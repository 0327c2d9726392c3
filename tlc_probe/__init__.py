"""tlc-probe: global-statistics drift between patch training and whole-image inference.

The public API, in tiers: this package holds what a user calls — conversion, sites, the
probe, reading statistics, shift metrics, figures, models and checkpoints, the main job on
a model of yours; the layers below (``tlc_probe.jobs``, ``tlc_probe.store``,
``tlc_probe.viz``, ...) hold the rest, one concept per module (``docs/ARCHITECTURE.md``).
Names are imported when first used (PEP 562), so ``import tlc_probe`` — and the
command line's ``--help`` — do not import torch.

Example::

    import tlc_probe

    tlc = tlc_probe.convert(model, train_size=256)     # exact local statistics
    with tlc_probe.Probe(tlc) as probe:
        tlc(image)
    rows = probe.take(["img0"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

#: Public name -> the module it lives in.
_EXPORTS: dict[str, str] = {
    # conversion and tiles
    "convert": "tlc_probe.tlc",
    "tlc_windows": "tlc_probe.tlc",
    "Plan": "tlc_probe.tlc",
    "LocalAvgPool2d": "tlc_probe.tlc",
    "LocalChannelAttention": "tlc_probe.tlc",
    "LocalInstanceNorm2d": "tlc_probe.tlc",
    "LocalLinearSE": "tlc_probe.tlc",
    "tiled_inference": "tlc_probe.tiling",
    "tile_starts": "tlc_probe.tiling",
    "Scheme": "tlc_probe.schemes",
    "make_schemes": "tlc_probe.schemes",
    # sites and the probe
    "Site": "tlc_probe.sites",
    "list_sites": "tlc_probe.sites",
    "execution_order": "tlc_probe.sites",
    "site_kind": "tlc_probe.sites",
    "find_sites": "tlc_probe.functional",
    "attach_functional_sites": "tlc_probe.functional",
    "Probe": "tlc_probe.probe",
    "training_windows": "tlc_probe.probe",
    # statistics, metrics, figures
    "read_stats": "tlc_probe.store",
    "shift_table": "tlc_probe.metrics",
    "summary": "tlc_probe.metrics",
    "decomposition": "tlc_probe.metrics",
    "fig_a3": "tlc_probe.viz",
    "depth_profile": "tlc_probe.viz",
    "heatmap": "tlc_probe.viz",
    "decomposition_figure": "tlc_probe.viz",
    "StatsSource": "tlc_probe.explore",
    # models, checkpoints, the main job
    "build": "tlc_probe.models",
    "load_checkpoint": "tlc_probe.store",
    "save_checkpoint": "tlc_probe.store",
    "shipped_checkpoints": "tlc_probe.store",
    "load_subject": "tlc_probe.jobs",
    "ImageSource": "tlc_probe.jobs",
    "open_stats": "tlc_probe.jobs",
    "reproduce": "tlc_probe.jobs",
}

__all__ = [
    "__version__",
    "ImageSource",
    "LocalAvgPool2d",
    "LocalChannelAttention",
    "LocalInstanceNorm2d",
    "LocalLinearSE",
    "Plan",
    "Probe",
    "Scheme",
    "Site",
    "StatsSource",
    "attach_functional_sites",
    "build",
    "convert",
    "decomposition",
    "decomposition_figure",
    "depth_profile",
    "execution_order",
    "fig_a3",
    "find_sites",
    "heatmap",
    "list_sites",
    "load_checkpoint",
    "load_subject",
    "make_schemes",
    "open_stats",
    "read_stats",
    "reproduce",
    "save_checkpoint",
    "shift_table",
    "shipped_checkpoints",
    "site_kind",
    "summary",
    "tile_starts",
    "tiled_inference",
    "tlc_windows",
    "training_windows",
]


#: The subpackages and modules, reachable as attributes (``tlc_probe.jobs``) as well.
_SUBMODULES = (
    "cli",
    "data",
    "explore",
    "functional",
    "jobs",
    "metrics",
    "models",
    "probe",
    "schemes",
    "sites",
    "sizes",
    "store",
    "tensors",
    "tiling",
    "tlc",
    "viz",
)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"tlc_probe.{name}")
    raise AttributeError(f"module 'tlc_probe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .explore import StatsSource
    from .functional import attach_functional_sites, find_sites
    from .jobs import ImageSource, load_subject, open_stats, reproduce
    from .metrics import decomposition, shift_table, summary
    from .models import build
    from .probe import Probe, training_windows
    from .schemes import Scheme, make_schemes
    from .sites import Site, execution_order, list_sites, site_kind
    from .store import load_checkpoint, read_stats, save_checkpoint, shipped_checkpoints
    from .tiling import tile_starts, tiled_inference
    from .tlc import (
        LocalAvgPool2d,
        LocalChannelAttention,
        LocalInstanceNorm2d,
        LocalLinearSE,
        Plan,
        convert,
        tlc_windows,
    )
    from .viz import decomposition_figure, depth_profile, fig_a3, heatmap
