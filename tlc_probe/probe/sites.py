"""Find a model's global-aggregation sites and their execution order.

A site keeps its qualified module name across regimes: ``convert`` replaces an
``nn.InstanceNorm2d`` by a ``LocalInstanceNorm2d`` (and an ``nn.AdaptiveAvgPool2d(1)``
by a ``LocalAvgPool2d``) under the same name, so the statistics of one site in the
``whole`` and ``tlc`` regimes line up by name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..tlc.convert import SITE_KINDS, global_sites


@dataclass(frozen=True)
class ProbeSite:
    """One global-aggregation site.

    ``name``: qualified module name; ``kind``: 'in' or 'se'; ``module``: the module;
    ``local``: True for a TLC-converted site; ``depth``: execution order (0-based) in one
    forward pass among all sites of the model, ``None`` when the site never runs.
    """

    name: str
    kind: str
    module: nn.Module
    local: bool
    depth: int | None

    @property
    def executed(self) -> bool:
        """Whether the site ran in the forward pass that numbered the sites."""
        return self.depth is not None


def _example_input(model: nn.Module, size: int, in_channels: int) -> torch.Tensor:
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, in_channels, size, size, generator=gen, dtype=dtype).to(device)


def find_sites(
    model: nn.Module,
    example: torch.Tensor | None = None,
    *,
    size: int = 64,
    in_channels: int = 3,
) -> list[ProbeSite]:
    """Every site of ``model`` (kinds 'in' and 'se', global or TLC-converted) with its
    execution ``depth`` from one forward pass.

    Args:
        model: any module whose forward takes one (N, C, H, W) tensor.
        example: the input of that pass; default a random (1, ``in_channels``, ``size``,
            ``size``) tensor on the model's device.

    Returns:
        Sites ordered by depth, then the sites that never ran (``depth=None``, in
        definition order). A site that runs twice in one pass keeps its first position.
    """
    sites = global_sites(model, SITE_KINDS)
    order: dict[str, int] = {}

    def recorder(name: str):
        def hook(_module, _args):
            order.setdefault(name, len(order))

        return hook

    handles = [s.module.register_forward_pre_hook(recorder(s.name)) for s in sites]
    x = example if example is not None else _example_input(model, size, in_channels)
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    found = [ProbeSite(s.name, s.kind, s.module, s.local, order.get(s.name)) for s in sites]
    ran = sorted((s for s in found if s.executed), key=lambda s: s.depth)
    return ran + [s for s in found if not s.executed]


def select_sites(
    sites: Sequence[ProbeSite],
    kinds: Iterable[str] = SITE_KINDS,
    names: Sequence[str] | None = None,
    depths: tuple[int | None, int | None] | None = None,
) -> list[ProbeSite]:
    """Narrow ``sites`` to the executed ones of ``kinds`` whose name matches one of the
    fnmatch patterns ``names`` (all if ``None``) and whose depth lies in the inclusive
    range ``depths`` = (lo, hi) (either end ``None`` = open).

    Raises ``ValueError`` for an unknown kind, a pattern that matches no site (the
    message lists the available ones) or an empty selection.
    """
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if bad := [k for k in kinds if k not in SITE_KINDS]:
        raise ValueError(f"unknown site kind(s) {bad}; kinds: {SITE_KINDS}")
    listing = ", ".join(f"{s.name} ({s.kind}, depth {s.depth})" for s in sites) or "none"
    if names is not None:
        for p in names:
            if not any(fnmatch.fnmatchcase(s.name, p) for s in sites):
                raise ValueError(f"site pattern {p!r} matches no site; sites: {listing}")
    lo, hi = depths if depths is not None else (None, None)
    out = [
        s
        for s in sites
        if s.executed
        and s.kind in kinds
        and (names is None or any(fnmatch.fnmatchcase(s.name, p) for p in names))
        and (lo is None or s.depth >= lo)
        and (hi is None or s.depth <= hi)
    ]
    if not out:
        raise ValueError(
            f"no executed site with kinds={kinds}, names={names}, depths={depths}; sites: {listing}"
        )
    return out


def parse_depths(text: str | None) -> tuple[int | None, int | None] | None:
    """'3:10' -> (3, 10), ':5' -> (None, 5), '4' -> (4, 4), None/'' -> None."""
    if not text:
        return None
    if ":" not in text:
        return int(text), int(text)
    a, b = text.split(":", 1)
    return (int(a) if a else None, int(b) if b else None)
