"""The site taxonomy: which modules aggregate over the whole feature map, of what kind,
and in which order a forward pass reaches them.

A *site* is a module whose output depends on a statistic of its whole input map:

* kind ``in``: ``nn.InstanceNorm2d`` without running statistics (it normalises with
  per-sample, per-channel moments);
* kind ``se``: ``nn.AdaptiveAvgPool2d(1)`` (squeeze-and-excitation / channel-attention
  pooling);
* kind ``attn``: a channel ("transposed") attention module in the form of Restormer's
  MDTA, recognised by its parts (:func:`is_channel_attention`): its c x c attention
  matrix per head sums over the whole map.

A *functional* site is a call such as ``x.mean((2, 3), keepdim=True)`` made in a
module's own code: :mod:`tlc_probe.functional` finds them and registers a proxy module
for each (class attribute ``global_kind``), named ``<module>#<function><index>``; a
*declared* site is any module the user names with its kind (``extra=``), for
aggregations no rule recognises.

Their TLC versions (any module class with a ``tlc_kind`` attribute, as
:class:`tlc_probe.LocalInstanceNorm2d`, :class:`tlc_probe.LocalAvgPool2d` and
:class:`tlc_probe.LocalChannelAttention` have) are sites of the same kind with
``local=True``. ``convert`` replaces a module under the same
qualified name, so one site's statistics line up by name across regimes.

Example::

    from tlc_probe.sites import execution_order, list_sites

    [s.name for s in list_sites(model)]          # definition order, no forward pass
    [(s.name, s.depth) for s in execution_order(model)]  # one pass on a 64 x 64 input
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .sizes import as_pair
from .tensors import eval_mode, model_device_dtype

SITE_KINDS: tuple[str, ...] = ("in", "se", "attn")

#: The statistic that stands for a site of each kind where one number per channel is
#: shown (figures, the report's tables): the mean of a pool or norm, the mean attention
#: logit of a channel-attention site (:data:`tlc_probe.tlc.attention.ATTN_STATS`).
PRIMARY_STAT: dict[str, str] = {"in": "mean", "se": "mean", "attn": "logit_mean"}


@dataclass(frozen=True)
class Site:
    """One global-aggregation site.

    ``name``: qualified module name; ``kind``: 'in', 'se' or 'attn'; ``module``: the module;
    ``local``: True for a TLC-converted site; ``depth``: execution order (0-based) among
    the model's sites in one forward pass, ``None`` when not ordered or never run.
    """

    name: str
    kind: str
    module: nn.Module
    local: bool
    depth: int | None = None

    @property
    def functional(self) -> bool:
        """Whether the site is a functional call (a proxy named ``owner#function<i>``)."""
        return "#" in self.name

    @property
    def executed(self) -> bool:
        """Whether the site ran in the forward pass that ordered the sites."""
        return self.depth is not None


def is_channel_attention(module: nn.Module) -> bool:
    """Whether ``module`` has the parts of Restormer's MDTA: an int ``num_heads``, a
    ``temperature`` parameter of shape (num_heads, 1, 1) and ``nn.Conv2d`` children
    ``qkv`` (C -> 3C), ``qkv_dwconv`` (3C -> 3C) and ``project_out`` (C -> C). The
    computation is checked where it matters: ``convert`` compares its local version with
    the module at training size."""
    heads = getattr(module, "num_heads", None)
    temp = getattr(module, "temperature", None)
    convs = [getattr(module, n, None) for n in ("qkv", "qkv_dwconv", "project_out")]
    if not isinstance(heads, int) or not isinstance(temp, nn.Parameter):
        return False
    if tuple(temp.shape) != (heads, 1, 1) or not all(isinstance(c, nn.Conv2d) for c in convs):
        return False
    qkv, dw, proj = convs
    c = proj.in_channels
    return (
        qkv.out_channels == 3 * c
        and dw.in_channels == dw.out_channels == 3 * c
        and proj.out_channels == c
        and c % heads == 0
    )


def site_kind(module: nn.Module) -> str | None:
    """'in' for an instance norm that normalises with per-sample statistics, 'se' for a
    pool to one value per channel (``nn.AdaptiveAvgPool2d(1)``), 'attn' for a channel
    attention (:func:`is_channel_attention`), their TLC versions and a functional site's
    proxy likewise (``tlc_kind`` / ``global_kind``); ``None`` for anything else. An
    ``nn.InstanceNorm2d`` with ``track_running_stats=True`` is no site: in eval mode it
    uses stored statistics."""
    local = getattr(type(module), "tlc_kind", None) or getattr(type(module), "global_kind", None)
    if local:
        return local
    if is_channel_attention(module):
        return "attn"
    if isinstance(module, nn.InstanceNorm2d):
        return None if module.track_running_stats else "in"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        size = module.output_size
        sizes = (size,) if isinstance(size, int) else tuple(size)
        return "se" if all(s == 1 for s in sizes) else None
    return None


def check_kinds(kinds: Iterable[str] | str) -> tuple[str, ...]:
    """``kinds`` as a non-empty tuple of :data:`SITE_KINDS` (a single string allowed);
    ``ValueError`` otherwise."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    bad = [k for k in kinds if k not in SITE_KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {SITE_KINDS}, got {kinds}")
    return kinds


def site_name(module_name: str) -> str:
    """The site name of a module's qualified name: a functional site's proxy ``a.b.#mean0``
    -> ``a.b#mean0``; any other name as it is."""
    return module_name.replace(".#", "#")


def module_name(site: str) -> str:
    """The qualified module name of a site name (the inverse of :func:`site_name`)."""
    if "#" not in site:
        return site
    owner, _, attr = site.partition("#")
    return f"{owner}.#{attr}" if owner else f"#{attr}"


def check_declared(model: nn.Module, extra: Mapping[str, str] | None) -> dict[str, str]:
    """``extra`` ({qualified module name: kind}) checked against ``model``: a dict;
    ``ValueError`` for a name that is no submodule or a kind not in :data:`SITE_KINDS`."""
    extra = dict(extra or {})
    modules = dict(model.named_modules())
    for name, kind in extra.items():
        if kind not in SITE_KINDS:
            raise ValueError(
                f"declared site {name!r} has the unknown kind {kind!r}; kinds: {SITE_KINDS}"
            )
        if name not in modules or name == "":
            raise ValueError(
                f"declared site {name!r} is not a submodule of {type(model).__name__} "
                "(give the qualified name of a module, as model.named_modules() lists it)"
            )
    return extra


def list_sites(
    model: nn.Module,
    kinds: Iterable[str] | str = SITE_KINDS,
    extra: Mapping[str, str] | None = None,
) -> list[Site]:
    """Every site of ``model`` (global or TLC-converted, functional ones attached by
    :func:`tlc_probe.functional.attach_functional_sites` included) of the given
    ``kinds``, in module-definition order, without running the model (``depth`` is
    ``None``). ``extra`` declares more sites, {qualified module name: kind} (a declared
    site's module is taken as it is: the probe reads its input, ``convert`` checks its
    local version against it). A module shared under several names is listed once,
    under its first name."""
    kinds = check_kinds(kinds)
    extra = check_declared(model, extra)
    out = []
    for name, module in model.named_modules():
        kind = extra.get(name) or site_kind(module)
        if kind in kinds:
            out.append(Site(site_name(name), kind, module, hasattr(type(module), "tlc_kind")))
    return out


@contextmanager
def temporary_hooks(
    pairs: Iterable[tuple[nn.Module, Callable]], *, pre: bool = True
) -> Iterator[list[RemovableHandle]]:
    """Register ``(module, hook)`` pairs as forward pre-hooks (``pre``) or forward hooks
    for the duration of a ``with`` block; all are removed on exit, also when the block
    (or a registration) raises. Yields the handles."""
    handles: list[RemovableHandle] = []
    try:
        for module, hook in pairs:
            reg = module.register_forward_pre_hook if pre else module.register_forward_hook
            handles.append(reg(hook))
        yield handles
    finally:
        for h in handles:
            h.remove()


@contextmanager
def recording_sizes(sites: Iterable[Site]) -> Iterator[dict[str, set[tuple[int, int]]]]:
    """While the ``with`` block runs, the (H, W) of every 4-D input each site is called
    with: yields ``{site name: set of (H, W)}`` (empty sets for sites not called)."""
    sites = list(sites)
    seen: dict[str, set[tuple[int, int]]] = {s.name: set() for s in sites}

    def recorder(name: str):
        def hook(_module, args):
            if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
                seen[name].add((int(args[0].shape[-2]), int(args[0].shape[-1])))

        return hook

    with temporary_hooks((s.module, recorder(s.name)) for s in sites):
        yield seen


def feature_sizes(
    model: nn.Module, size: int | tuple[int, int], in_channels: int = 3
) -> dict[str, list[tuple[int, int]]]:
    """The feature-map sizes each site of ``model`` sees when the input is ``size``
    (H, W pixels; an int for a square): one forward pass of :func:`example_input` in eval
    mode under ``no_grad``. Returns ``{site name: sorted list of (H, W)}``: one size for
    most sites, several for a site called on maps of different sizes in one pass, none
    for a site the pass does not reach.

    Example::

        feature_sizes(hinet, 256)["down_path_2.3.norm"]   # [(32, 32)]
    """
    x = example_input(model, size, in_channels)
    with eval_mode(model), torch.no_grad(), recording_sizes(list_sites(model)) as seen:
        model(x)
    return {name: sorted(v) for name, v in seen.items()}


def example_input(model: nn.Module, size: int | tuple[int, int] = 64, in_channels: int = 3):
    """A seeded uniform random (1, ``in_channels``, h, w) tensor on ``model``'s device and
    in its dtype: the input of calibration and ordering passes."""
    h, w = as_pair(size, "size")
    device, dtype = model_device_dtype(model)
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, in_channels, h, w, generator=gen).to(device=device, dtype=dtype)


def execution_order(
    model: nn.Module,
    example: torch.Tensor | None = None,
    *,
    size: int = 64,
    in_channels: int = 3,
    extra: Mapping[str, str] | None = None,
) -> list[Site]:
    """Every site of ``model`` (all kinds, global or TLC-converted) with its
    execution ``depth`` from one forward pass (in eval mode, under ``no_grad``; every
    submodule's mode is restored).

    Args:
        model: any module whose forward takes one (N, C, H, W) tensor.
        example: the input of that pass; default :func:`example_input` of ``size``.
        extra: declared sites, {qualified module name: kind} (see :func:`list_sites`).

    Returns:
        Sites ordered by depth, then the sites that never ran (``depth=None``, in
        definition order). A site that runs twice in one pass keeps its first position.
    """
    sites = list_sites(model, extra=extra)
    order: dict[str, int] = {}

    def recorder(name: str):
        def hook(_module, _args):
            order.setdefault(name, len(order))

        return hook

    x = example if example is not None else example_input(model, size, in_channels)
    # eval mode: no running statistics move, no dropout; the pass only counts
    hooks = temporary_hooks((s.module, recorder(s.name)) for s in sites)
    with eval_mode(model), hooks, torch.no_grad():
        model(x.clone())  # (some models scale their input in place)
    found = [replace(s, depth=order.get(s.name)) for s in sites]
    ran = sorted((s for s in found if s.executed), key=lambda s: s.depth)
    return ran + [s for s in found if not s.executed]


def select_sites(
    sites: Sequence[Site],
    kinds: Iterable[str] | str = SITE_KINDS,
    names: Sequence[str] | None = None,
    depths: tuple[int | None, int | None] | None = None,
) -> list[Site]:
    """Narrow ``sites`` to the executed ones of ``kinds`` whose name matches one of the
    fnmatch patterns ``names`` (all if ``None``) and whose depth lies in the inclusive
    range ``depths`` = (lo, hi) (either end ``None`` = open).

    Raises ``ValueError`` for an unknown kind, a pattern that matches no site (the
    message lists the available ones) or an empty selection.
    """
    kinds = check_kinds(kinds)
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
