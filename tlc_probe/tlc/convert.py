"""``convert``: turn every global-aggregation site of a model into its TLC local version.

Calibration is explicit: one forward pass at ``train_size`` records the feature size
each site sees, and the window of a site is that size x base_size / train_size (floor,
per axis). Three kinds of site are rewritten:

* ``nn.InstanceNorm2d`` -> :class:`~tlc_probe.tlc.norm.LocalInstanceNorm2d`;
* ``nn.AdaptiveAvgPool2d(1)`` -> :class:`~tlc_probe.tlc.pooling.LocalAvgPool2d`. A pool
  whose block runs ``nn.Linear`` layers on the flattened means (:func:`linear_se_head`)
  has its whole block replaced by :class:`~tlc_probe.tlc.se.LocalLinearSE` (the linear
  layers then run per position). For the other pools a second pass checks, for all at
  once, that the code after the pool accepts a full map of means; pools whose output is
  flattened, viewed to (N, C) or fed to anything else that needs a vector are found by
  bisection and reported by name before anything is run on a large image;
* channel attention (Restormer's MDTA) ->
  :class:`~tlc_probe.tlc.attention.LocalChannelAttention`.

Functional sites (``x.mean((2, 3), keepdim=True)``, ``F.adaptive_avg_pool2d(x, 1)``,
``F.instance_norm``, ``F.layer_norm`` over (C, H, W); see :mod:`tlc_probe.functional`) are
found in the calibration pass and converted the same way, through their proxies
(:mod:`tlc_probe.tlc.functional`). Declared sites (``sites={"name": kind}``) are modules
the user names for aggregations no rule recognises.

Every rewritten block (linear SE, attention, functional and declared sites) is checked
at training size against the call it replaces, on the calibration pass's own input; a
block that only looks like one is reported by name. Sites the calibration pass never
reaches (e.g. SPDNet's instance norms, created but never called) are left as they are,
with a warning; a declared site that is never reached is an error.
"""

from __future__ import annotations

import copy
import fnmatch
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
from torch import nn

from ..functional import ROUTER_ATTR, FunctionalMean, attach_functional_sites
from ..sites import (
    SITE_KINDS,
    Site,
    check_declared,
    check_kinds,
    example_input,
    list_sites,
    recording_sizes,
    temporary_hooks,
)
from ..sizes import as_pair
from ..tensors import eval_mode
from .attention import LocalChannelAttention
from .box import FAST_MIN_CELLS
from .functional import LocalFunctionalInstanceNorm, LocalFunctionalLayerNorm, LocalFunctionalMean
from .norm import LocalInstanceNorm2d
from .plan import Plan
from .pooling import LocalAvgPool2d
from .se import LocalLinearSE, linear_se_head

_MIXED_WARNING = (
    "TLC leaves these global-aggregation sites global: {names}. Mixing local and global "
    "statistics in one network can be far worse than either (in a toy with IN and SE "
    "pooling in one block, trained on 64-px patches, converting only the SE pools took "
    "whole-image PSNR from 26 dB to NaN; converting both gained +0.2 dB)."
)


def tlc_windows(model: nn.Module) -> list[dict]:
    """The window of every TLC-converted site of ``model``, one dict each: name, kind,
    feature_size (H, W seen at training size), kernel_size (window in pixels), fast_imp."""
    return [
        {
            "name": s.name,
            "kind": s.kind,
            "feature_size": s.module.feature_size,
            "kernel_size": s.module.kernel_size,
            "fast_imp": s.module.fast_imp,
        }
        for s in list_sites(model)
        if s.local
    ]


def _flat_tensors(out) -> Iterator[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _flat_tensors(v)
    elif isinstance(out, list | tuple):
        for v in out:
            yield from _flat_tensors(v)


def _same_output(a, b) -> bool:
    ta, tb = list(_flat_tensors(a)), list(_flat_tensors(b))
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb, strict=True):
        if x.shape != y.shape:
            return False
        scale = float(x.detach().abs().max()) if x.numel() else 0.0
        if not torch.allclose(x, y, rtol=1e-4, atol=1e-5 * max(scale, 1.0)):
            return False
    return True


def _calibrate(
    model, sites, x, watch: Sequence[nn.Module] = ()
) -> tuple[object, dict[str, set[tuple[int, int]]], dict[int, tuple]]:
    """One pass at train size: (model output, {site: feature sizes}, {id(module): (input,
    output, args)} of the first call of every ``watch`` module: input and output copied,
    ``args`` the call's positional arguments)."""
    calls: dict[int, tuple] = {}

    def keep(module, args, out):
        if id(module) not in calls and args and isinstance(out, torch.Tensor):
            # outputs get added to in place: copies
            calls[id(module)] = (args[0].clone(), out.clone(), args)

    with recording_sizes(sites) as seen, temporary_hooks(((m, keep) for m in watch), pre=False):
        try:
            ref = model(x.clone())  # a fresh copy for every pass: some models scale x in place
        except Exception as e:  # the model itself fails at train_size: say so, plainly
            raise ValueError(
                f"calibration forward pass at train_size {tuple(x.shape[-2:])} failed: "
                f"{type(e).__name__}: {e}"
            ) from e
    return ref, seen, calls


def _expand_ok(model, x, ref, sites: Sequence[Site]) -> tuple[bool, str]:
    """Run ``model`` with each pool's (N, C, 1, 1) output broadcast to the full map it
    pooled, as a local pool returns. True if the output is unchanged."""

    def expander(_module, args, out):
        h, w = args[0].shape[-2:]
        return out.expand(-1, -1, h, w).contiguous()

    with temporary_hooks(((s.module, expander) for s in sites), pre=False):
        try:
            got = model(x.clone())
        except Exception as e:
            return False, f"{type(e).__name__}: {e}"
    if _same_output(ref, got):
        return True, ""
    return False, "the output changes when the pooled means form a map"


def _unsafe_pools(model, x, ref, sites: Sequence[Site]) -> list[tuple[Site, str]]:
    ok, why = _expand_ok(model, x, ref, sites)
    if ok:
        return []
    if len(sites) == 1:
        return [(sites[0], why)]
    mid = len(sites) // 2
    return _unsafe_pools(model, x, ref, sites[:mid]) + _unsafe_pools(model, x, ref, sites[mid:])


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    # Every attribute that refers to `old`, so shared modules are replaced everywhere.
    for parent in model.modules():
        for attr, child in list(parent._modules.items()):
            if child is old:
                parent._modules[attr] = new


def _parent(model: nn.Module, name: str) -> tuple[str, nn.Module]:
    """(attribute name, parent module) of the submodule called ``name``."""
    path, _, attr = name.rpartition(".")
    return attr, model.get_submodule(path) if path else model


def _linear_se_blocks(target: nn.Module, pools: Sequence[Site]) -> dict[str, tuple]:
    """{pool site name: (attribute, parent block, head)} for the pools whose block is a
    linear SE (:func:`~tlc_probe.tlc.se.linear_se_head`)."""
    out = {}
    for s in pools:
        if s.functional:
            continue
        attr, parent = _parent(target, s.name)
        if parent is not target and (head := linear_se_head(parent, s.module)) is not None:
            out[s.name] = (attr, parent, head)
    return out


def _reproduces(new: nn.Module, call: tuple | None) -> bool:
    if call is None:
        return False
    inp, ref, args = call
    with torch.no_grad():
        try:
            got = new(inp, *args[1:])
        except Exception:
            return False
    return _same_output(ref, got)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


#: The approximations a user chooses between (``convert(mode=...)``).
MODES = ("exact", "fast")
#: The implementations of each mode, the first the default: a speed-only choice with the
#: same numbers (exact: up to float rounding; fast: the grid head evaluates the
#: squeeze-excitation activations on the block grid), made here, never by the user.
BACKENDS: dict[str, tuple[str, ...]] = {
    "exact": ("fused", "valid", "plain"),
    "fast": ("grid", "plain"),
}
_BACKEND: ContextVar[str | None] = ContextVar("tlc_backend", default=None)


@contextmanager
def backend(name: str) -> Iterator[None]:
    """Within the ``with`` block, :func:`convert` builds its mode with the implementation
    ``name`` (one of :data:`BACKENDS` of that mode) instead of the default: for benchmarks
    and tests that compare implementations. Not a user's choice: the numbers are the
    same.

    Example::

        with backend("plain"):
            reference = convert(model, train_size=64)   # the integral-image path
    """
    if not any(name in b for b in BACKENDS.values()):
        raise ValueError(f"unknown backend {name!r}; backends: {BACKENDS}")
    token = _BACKEND.set(name)
    try:
        yield
    finally:
        _BACKEND.reset(token)


#: Largest train_size side a calibration pass accepts (a (1, C, side, side) input).
MAX_TRAIN_SIDE = 16384


def check_train_size(train_size: object) -> tuple[int, int]:
    """``train_size`` as (H, W) px, refused (``ValueError`` naming it) when a side exceeds
    :data:`MAX_TRAIN_SIDE`: the calibration pass would allocate a map that large before
    anything else could say so."""
    hw = as_pair(train_size, "train_size", minimum=1)
    if max(hw) > MAX_TRAIN_SIDE:
        raise ValueError(
            f"train_size {hw} is larger than any training patch ({MAX_TRAIN_SIDE} px a side "
            "at most): the calibration pass would run the network on an input that large"
        )
    return hw


def _heads(mode: str) -> dict[str, bool]:
    """The head options of the pools for ``mode`` under the current backend."""
    name = _BACKEND.get()
    if name is None or name not in BACKENDS[mode]:
        if name is not None:
            raise ValueError(f"backend {name!r} is not one of mode {mode!r}: {BACKENDS[mode]}")
        name = BACKENDS[mode][0]
    return {
        "grid_head": mode == "fast" and name == "grid",
        "valid_head": mode == "exact" and name == "valid",
        "fused_head": mode == "exact" and name == "fused",
    }


def convert(
    model: nn.Module,
    train_size: int | tuple[int, int] = (256, 256),
    base_size: int | tuple[int, int] | None = None,
    *,
    mode: str = "exact",
    inplace: bool = False,
    kinds: Iterable[str] = SITE_KINDS,
    skip: Sequence[str] = (),
    in_channels: int = 3,
    fast_min_cells: int = FAST_MIN_CELLS,
    sites: Mapping[str, str] | None = None,
    plan: Plan | str | Path | None = None,
    fast_imp: bool | None = None,
) -> nn.Module:
    """Return the TLC version of ``model``: every global-aggregation site made local.

    Sites are ``nn.InstanceNorm2d`` (kind 'in', replaced by :class:`LocalInstanceNorm2d`),
    ``nn.AdaptiveAvgPool2d(1)`` (kind 'se', replaced by :class:`LocalAvgPool2d`; a
    squeeze-excitation block with ``nn.Linear`` layers after it by
    :class:`~tlc_probe.tlc.se.LocalLinearSE`) and Restormer-style channel attention
    (kind 'attn', replaced by :class:`~tlc_probe.tlc.attention.LocalChannelAttention`),
    functional aggregations found in a pass at ``train_size`` (proxies named
    ``owner#function<i>``, :mod:`tlc_probe.functional`; replaced by the classes of
    :mod:`tlc_probe.tlc.functional`) and the modules declared in ``sites``.
    One forward pass of a random (1, ``in_channels``, *train_size) input records the
    feature size (h, w) each site sees; the site's window is
    (h * base_h // train_h, w * base_w // train_w), at least 1. At ``train_size`` (and
    any size up to ``base_size``) the windows cover the maps and the converted model
    computes exactly what the original does.

    Args:
        model: any module whose forward takes one (N, C, H, W) tensor.
        train_size: patch size (H, W) the model was trained on, in input pixels (an int
            for a square); default (256, 256), the published setting. A tlc-probe
            checkpoint records it (``meta["train_size"]`` of
            :func:`tlc_probe.store.read_checkpoint`).
        base_size: size the local window corresponds to, in input pixels; default
            1.5 x train_size (the published setting).
        mode: ``"exact"`` (default): every local mean is the brute-force window mean's
            number (up to float rounding). The fastest implementation is chosen here,
            per call: each squeeze-excitation block's pool, head and multiply run in one
            pass of row bands that stay in cache, and channel attention in row bands
            (:class:`~tlc_probe.tlc.fused.FusedMap`,
            :func:`~tlc_probe.tlc.attention.local_channel_attention_bands`); under
            autograd, for half precision and for maps holding NaN / inf the exact pools
            run their heads on the valid windows and attention takes the integral-image
            path — the same numbers either way. ``"fast"``: the block-grid approximation
            in every site (bounded error, :mod:`tlc_probe.tlc.box`; for attention the
            cell-grid blend of
            :func:`~tlc_probe.tlc.attention.local_channel_attention_fast`), with the
            squeeze-excitation heads evaluated on the grid where the head is
            convolutional (:mod:`tlc_probe.tlc.gridmap`).
        inplace: modify ``model`` itself; otherwise a deep copy is converted and
            ``model`` is left untouched.
        kinds: which kinds of site to convert; leaving a kind global warns.
        skip: fnmatch patterns of site names to leave global (warns). Needed for pools
            whose output is flattened or viewed for anything but linear layers.
        in_channels: channels of the calibration input.
        fast_min_cells: fewest blocks per window axis in the fast variant.
        sites: declared sites, {qualified module name: kind}, for aggregations no rule
            recognises: kind 'se' for a module returning the spatial mean (N, C, 1, 1)
            of its input, 'in' for one normalising each channel by its own spatial mean
            and variance (parameters, if any, named ``weight`` / ``bias`` of shape (C,);
            ``eps`` read from the module, default 1e-5), 'attn' for an MDTA-like module.
            Each is checked against its own call at train size.
        plan: a :class:`~tlc_probe.tlc.plan.Plan` (or its ``plan.json``): each site's
            window in feature pixels, or global, instead of the base_size rule (sites
            it does not name keep the rule); made for ``train_size`` (checked), every
            window at least the site's training extent; not with ``base_size``.
        fast_imp: deprecated alias of TLC's own name: ``fast_imp=True`` is
            ``mode="fast"`` (a ``DeprecationWarning`` says so).

    Returns:
        The converted module (``model`` itself when ``inplace``), in the same
        train/eval mode, with identical ``state_dict`` keys and values.

    Raises:
        ValueError: no site; a skip pattern matching no site; a site reached with two
            different feature sizes; a pool whose output cannot become a map (also a
            functional ``mean`` with ``keepdim=False``), or a block whose local version
            does not reproduce it at train size (named, with the ``skip=[...]`` to use);
            the model already converted; a calibration pass that fails; a declared site
            that is no submodule, has an unknown kind or is never reached.

    Warns:
        UserWarning: sites left global (``kinds``, ``skip``), and sites the calibration
            pass never reached (left as they are).
        DeprecationWarning: ``fast_imp`` given.

    With ``inplace``, the functional sites' proxies stay attached to ``model`` even when
    the conversion then fails (they compute exactly the calls they stand for).

    Example:
        >>> tlc_model = convert(model, train_size=(256, 256))  # doctest: +SKIP
        >>> restored = tlc_model(whole_image)  # (1, 3, 720, 1280)  # doctest: +SKIP
    """
    if fast_imp is not None:
        warnings.warn(
            f"convert(fast_imp={fast_imp}) is deprecated: write mode="
            f"{'fast' if fast_imp else 'exact'!r}",
            DeprecationWarning,
            stacklevel=2,
        )
        mode = "fast" if fast_imp else mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    heads = _heads(mode)
    fast = mode == "fast"
    train_hw = check_train_size(train_size)
    base_hw = (
        (int(1.5 * train_hw[0]), int(1.5 * train_hw[1]))
        if base_size is None
        else as_pair(base_size, "base_size")
    )
    if base_hw[0] < train_hw[0] or base_hw[1] < train_hw[1]:
        raise ValueError(
            f"base_size {base_hw} is smaller than train_size {train_hw}: the windows would "
            "be smaller than what the network saw in training, and the converted model "
            "would no longer equal it at train_size (TLC's setting: base_size = 1.5 x "
            "train_size; at least train_size)"
        )
    if plan is not None:
        plan = plan if isinstance(plan, Plan) else Plan.load(plan)
        if base_size is not None:
            raise ValueError("give base_size or a plan, not both: the plan sets every window")
        if plan.train_size != train_hw:
            raise ValueError(f"the plan was made for train_size {plan.train_size}, not {train_hw}")
    kinds = check_kinds(kinds)
    skip = [skip] if isinstance(skip, str) else list(skip)
    if hasattr(model, "_orig_mod"):  # torch.compile's wrapper
        raise ValueError(
            "convert the module itself, not torch.compile's wrapper: convert(model._orig_mod, "
            "...), then compile the result"
        )
    if any(p.is_meta for p in model.parameters()):
        raise ValueError(
            "the model's parameters are on the meta device (no weights loaded): load its "
            "weights first (e.g. model.to_empty(device='cpu') then load_state_dict)"
        )
    target = model if inplace else copy.deepcopy(model)
    declared = check_declared(target, sites)
    x = example_input(target, train_hw, in_channels)
    try:
        attach_functional_sites(target, x)
    except Exception as e:  # the model itself fails at train_size: say so, plainly
        raise ValueError(
            f"calibration forward pass at train_size {train_hw} failed: {type(e).__name__}: {e}"
        ) from e
    found = list_sites(target, extra=declared)
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no global-aggregation site (no nn.InstanceNorm2d, "
            "no nn.AdaptiveAvgPool2d(1), no channel attention, no functional spatial mean "
            "or instance / layer norm): nothing for TLC to convert (in Python, an "
            "aggregation no rule recognises can be declared: convert(..., sites={name: kind}))"
        )
    if already := [s.name for s in found if s.local]:
        raise ValueError(f"model is already TLC-converted at {already}; convert the original")
    names = [s.name for s in found]
    if unmatched := [p for p in skip if not any(fnmatch.fnmatchcase(n, p) for n in names)]:
        raise ValueError(f"skip patterns {unmatched} match no site; sites are: {names}")
    if plan is not None:
        if unknown := [n for n in plan.windows if n not in names]:
            raise ValueError(f"the plan names sites this model does not have: {unknown}")
        skip += [n for n, w in plan.windows.items() if w is None]  # planned global
    chosen = [s for s in found if s.kind in kinds and not _matches(s.name, skip)]
    if not chosen:
        raise ValueError(f"kinds={kinds} and skip={skip} leave no site to convert of {names}")
    planned_global = {n for n, w in plan.windows.items() if w is None} if plan else set()
    if left := [s.name for s in found if s not in chosen and s.name not in planned_global]:
        warnings.warn(_MIXED_WARNING.format(names=left), UserWarning, stacklevel=2)
    if vectors := [
        s.name for s in chosen if isinstance(s.module, FunctionalMean) and not s.module.keepdim
    ]:
        raise ValueError(
            f"these spatial means return one value per channel (keepdim=False), so they "
            f"cannot return a map of local means: {vectors}; pass skip={vectors!r} to leave "
            "them global, or use keepdim=True and broadcast"
        )

    pools = [s for s in chosen if s.kind == "se"]
    linear = _linear_se_blocks(target, pools)
    watch = [parent for _, parent, _ in linear.values()]
    watch += [s.module for s in chosen if s.kind == "attn" or s.functional or s.name in declared]
    with eval_mode(target):
        with torch.no_grad():
            ref, seen, calls = _calibrate(target, chosen, x, watch)
            if never := [n for n, sizes in seen.items() if not sizes and n in declared]:
                raise ValueError(
                    f"declared sites never reached in a forward pass at train_size "
                    f"{train_hw}: {never}"
                )
            if missed := [n for n, sizes in seen.items() if not sizes]:
                shown = missed if len(missed) <= 6 else missed[:6] + [f"... ({len(missed)} in all)"]
                warnings.warn(
                    f"sites never called in a forward pass at train_size {train_hw} are left "
                    f"as they are: {shown}",
                    UserWarning,
                    stacklevel=2,
                )
                chosen = [s for s in chosen if s.name not in missed]
                pools = [s for s in pools if s.name not in missed]
                if not chosen:
                    raise ValueError(
                        f"no site to convert: every chosen site is never called at train_size "
                        f"{train_hw} ({len(missed)} sites)"
                    )
            if multi := {n: sorted(v) for n, v in seen.items() if len(v) > 1}:
                raise ValueError(
                    f"sites called with several feature sizes in one pass, so no single "
                    f"window fits them: {multi}; pass skip={list(multi)!r} to leave them global"
                )
            plain = [s for s in pools if s.name not in linear]
            if plain and (bad := _unsafe_pools(target, x, ref, plain)):
                lines = "\n".join(f"  {s.name}: {why}" for s, why in bad)
                raise ValueError(
                    "these global pools feed code that needs one value per channel "
                    "(flatten / view for anything but nn.Linear layers), so they cannot "
                    f"return a map of local means:\n{lines}\nPass "
                    f"skip={[s.name for s, _ in bad]!r} to leave them global, or rewrite "
                    "the code after them as 1x1 convolutions."
                )

    # Every new module is built and checked before any is put in (``inplace`` leaves the
    # model as it was when a check fails).
    new_blocks: list[tuple[str, nn.Module, nn.Module, bool]] = []  # site, old, new, checked
    for s in chosen:
        ((h, w),) = seen[s.name]
        kernel = (max(1, h * base_hw[0] // train_hw[0]), max(1, w * base_hw[1] // train_hw[1]))
        if plan is not None and s.name in plan.windows:
            kernel = plan.window(s.name, (h, w))
        opts = dict(fast_imp=fast, fast_min_cells=fast_min_cells, feature_size=(h, w))
        if (s.functional or s.name in declared) and s.name not in linear:
            new = _local_version(s, calls.get(id(s.module)), kernel, heads, opts)
            new.train(s.module.training)
            new_blocks.append((s.name, s.module, new, True))
        elif s.kind == "in":
            new = LocalInstanceNorm2d.from_instance_norm(s.module, kernel, **opts)
            new_blocks.append((s.name, s.module, new, False))
        elif s.kind == "attn":
            new = LocalChannelAttention.from_attention(
                s.module, kernel, fused=heads["fused_head"], **opts
            )
            new_blocks.append((s.name, s.module, new, True))
        elif s.name in linear:  # the valid / fused map, not the grid head (an approximation)
            attr, parent, head = linear[s.name]
            exact_heads = {k: heads[k] for k in ("valid_head", "fused_head")}
            new = LocalLinearSE(attr, LocalAvgPool2d(kernel, **exact_heads, **opts), head)
            new.train(parent.training)
            new_blocks.append((s.name, parent, new, True))
        else:
            new = LocalAvgPool2d(kernel, **heads, **opts)
            new_blocks.append((s.name, s.module, new, False))
    wrong = []
    for name, old, new, checked in new_blocks:
        if checked:
            with eval_mode(new):  # the calibration pass ran in eval mode
                if not _reproduces(new, calls.get(id(old))):
                    wrong.append(name)
    if mine := [n for n in wrong if n in declared]:
        raise ValueError(
            f"declared sites {mine} do not compute what a site of their kind computes (their "
            "local version differs from them at train size): remove them from sites= (a "
            "declared 'se' returns the spatial mean of its input, an 'in' normalises each "
            "channel by its own spatial mean and variance)"
        )
    if wrong:
        raise ValueError(
            "these sites look like a linear squeeze-excitation block, a channel attention or "
            "a functional aggregation, but their local version does not compute what they "
            f"compute at train size: {wrong}; pass skip={wrong!r} to leave them global"
        )
    for _, old, new, _ in new_blocks:
        if hasattr(old, "call_site"):  # a functional site's proxy: the router finds its
            new.call_site = old.call_site  # local version by the call it stands for
        _replace(target, old, new)
    if (router := getattr(target, ROUTER_ATTR, None)) is not None:
        router.install(target)  # the new modules need its hooks too
    return target


def _local_version(
    site: Site, call: tuple | None, kernel: tuple[int, int], heads: dict, opts: dict
) -> nn.Module:
    """The local module for a functional or declared site, from its calibration call
    (input, output, args); checked against that call by the caller."""
    module = site.module
    fn = getattr(type(module), "tlc_function", "")
    channels = int(call[0].shape[1]) if call is not None else 1
    if fn in ("mean", "adaptive_avg_pool2d"):
        return LocalFunctionalMean(fn, kernel, **heads, **opts)
    if fn == "instance_norm":
        return LocalFunctionalInstanceNorm(channels, kernel, **opts)
    if fn == "layer_norm":
        return LocalFunctionalLayerNorm(channels, kernel, **opts)
    if site.kind == "se":
        return LocalAvgPool2d(kernel, **heads, **opts)
    if site.kind == "attn":
        return LocalChannelAttention.from_attention(
            module, kernel, fused=heads["fused_head"], **opts
        )
    params = dict(module.named_parameters(recurse=False))
    if set(params) - {"weight", "bias"} or any(p.dim() != 1 for p in params.values()):
        raise ValueError(
            f"declared 'in' site {site.name}: its parameters {sorted(params)} are not a "
            "per-channel weight / bias, so no local instance norm can keep them"
        )
    eps = float(getattr(module, "eps", 1e-5))
    new = LocalInstanceNorm2d(channels, kernel, eps=eps, affine=bool(params), **opts)
    for name in ("weight", "bias"):
        new._parameters[name] = params.get(name)
    new.train(module.training)
    return new


def grid_head_pools(model: nn.Module) -> list[str]:
    """Names of the ``se`` pools of ``model`` whose head a grid head can take (pools not
    in a linear SE block, :func:`~tlc_probe.tlc.se.linear_se_head`)."""
    pools = [s for s in list_sites(model, "se") if not s.local]
    linear = _linear_se_blocks(model, pools)
    return [s.name for s in pools if s.name not in linear]
