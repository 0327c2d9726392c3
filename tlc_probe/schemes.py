"""The inference schemes compared throughout: one definition, used by bench, evaluate,
the window sweep and the figures.

=============  =================================================================
``whole``      the global model on the whole image
``tlc``        :func:`tlc_probe.convert` (``mode="exact"``: exact local statistics,
               the fastest exact implementation chosen by ``convert``)
``tlc-fast``   ``convert(..., mode="fast")``: the block-grid approximation, the
               squeeze-excitation heads on the grid
``tlc-tuned``  ``convert(..., plan=plan)``: exact, each site's window from a
               :class:`~tlc_probe.tlc.plan.Plan` (needs one)
``tiles-<o>``  tiles of ``train_size`` overlapping by ``o`` px, overlaps averaged
               (:func:`tlc_probe.tiled_inference`)
=============  =================================================================

The paper uses 256-px tiles with overlaps 16 and 128 for a 256-trained model; the default
overlaps here are the same fractions of the tile (:func:`default_overlaps`).

Example::

    from tlc_probe.schemes import make_schemes

    for s in make_schemes(model, train_size=64, names=["whole", "tlc", "tiles-4"]):
        restored = s.run(blurry)  # (1, 3, H, W) -> (1, 3, H, W)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .sizes import as_int
from .tiling import tiled_inference
from .tlc import Plan, convert

#: Overlaps as fractions of the tile: the paper's 16 and 128 px of a 256-px tile.
PAPER_OVERLAP_FRACTIONS = (16 / 256, 128 / 256)
#: Scheme name -> how ``convert`` makes the model local (``None``: the global model).
TLC_MODES: dict[str, str | None] = {
    "whole": None,
    "tlc": "exact",
    "tlc-fast": "fast",
    "tlc-tuned": "exact",
}


@dataclass(frozen=True)
class Scheme:
    """One inference scheme.

    ``name``: see the module docstring; ``run``: (N, 3, H, W) -> (N, 3, H, W);
    ``overlap``: tile overlap in px (``None`` if untiled); ``tlc_mode``: 'exact' or 'fast'
    (``convert``'s ``mode``) for a converted model, ``None`` for the global one.
    """

    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    overlap: int | None = None
    tlc_mode: str | None = None


def default_overlaps(tile: int) -> list[int]:
    """The paper's overlaps (16 and 128 px of a 256 tile) scaled to ``tile`` px."""
    return sorted({max(0, min(tile - 1, round(f * tile))) for f in PAPER_OVERLAP_FRACTIONS})


def default_names(
    model: nn.Module,
    train_size: int,
    overlaps: Sequence[int] | None = None,
    plan: Plan | None = None,
):
    """whole, tlc, tlc-fast (and tlc-tuned with a ``plan``), then ``tiles-<o>`` for each
    of ``overlaps`` (default :func:`default_overlaps`)."""
    names = ["whole", "tlc", "tlc-fast", *(["tlc-tuned"] if plan is not None else [])]
    overlaps = default_overlaps(train_size) if overlaps is None else overlaps
    return names + [f"tiles-{o}" for o in overlaps]


def make_scheme(
    name: str,
    model: nn.Module,
    train_size: int,
    base_size: int | None = None,
    plan: Plan | None = None,
) -> Scheme:
    """The scheme ``name`` for ``model`` trained on ``train_size`` px patches (TLC
    windows from ``base_size``, default 1.5 x train_size; ``tlc-tuned``: from ``plan``).
    ``ValueError`` for an unknown name, ``tlc-tuned`` without a plan or a tile overlap
    outside [0, train_size)."""
    if name == "tlc-tuned":
        if plan is None:
            raise ValueError("scheme 'tlc-tuned' needs a window plan (plan.json)")
        net = model if plan.all_global else convert(model, train_size=train_size, plan=plan)
        return Scheme(name, net, tlc_mode="exact")
    if name in TLC_MODES:
        mode = TLC_MODES[name]
        if mode is None:
            return Scheme(name, model)
        net = convert(model, train_size=train_size, base_size=base_size, mode=mode)
        return Scheme(name, net, tlc_mode=mode)
    prefix, _, tail = name.partition("-")
    if prefix != "tiles" or not tail.isdigit():
        raise ValueError(
            f"unknown scheme {name!r}; schemes: {sorted(TLC_MODES)} and tiles-<overlap px>"
        )
    overlap = as_int(int(tail), "overlap")
    if not 0 <= overlap < train_size:
        raise ValueError(f"scheme {name!r}: overlap must be in [0, {train_size}), got {overlap}")

    def run(x: torch.Tensor) -> torch.Tensor:
        return tiled_inference(model, x, tile=train_size, overlap=overlap)

    return Scheme(name, run, overlap=overlap)


def make_schemes(
    model: nn.Module,
    train_size: int,
    names: Sequence[str] | None = None,
    *,
    overlaps: Sequence[int] | None = None,
    base_size: int | None = None,
    plan: Plan | None = None,
) -> list[Scheme]:
    """:func:`make_scheme` for each of ``names`` (default :func:`default_names` with
    ``overlaps`` and ``plan``), in that order."""
    if names is None:
        names = default_names(model, train_size, overlaps, plan)
    return [make_scheme(n, model, train_size, base_size, plan) for n in names]
