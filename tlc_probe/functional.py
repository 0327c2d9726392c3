"""Functional global aggregations as sites: ``x.mean((2, 3), keepdim=True)`` and its kin.

Much restoration code aggregates without a module: ``x.mean((2, 3), keepdim=True)``,
``torch.mean(x, dim=[-2, -1], keepdim=True)``, ``F.adaptive_avg_pool2d(x, 1)``,
``F.instance_norm(x, ...)``, ``F.layer_norm(x, x.shape[1:])``. There is nothing to hook
or swap, so :func:`attach_functional_sites` finds these calls in one forward pass (a
:class:`~torch.overrides.TorchFunctionMode`, no tracing: any Python control flow works)
and gives each a *proxy module*, registered as a child of the module whose own code made
the call, under the attribute ``#<function><index>`` (index counted per function among
the qualifying calls of one ``forward`` of that module). The site is then named
``<module name>#<function><index>`` (``encoder.block3#mean0``; ``#mean0`` for the root)
and is an ordinary site for every layer above: ``list_sites``, the probe's hooks,
``convert`` (which swaps the proxy for its local version), reliance.

After attaching, the same mode routes every later qualifying call through its proxy
(the proxy computes exactly the call it replaces, with the same function and
arguments), while the model runs; a forward pre-hook and an always-called forward hook on
every module keep track of which module's own code is running. A call is recognised by
where its code is (file and line, the first frame outside torch) and how often that
line has run in the module's forward, not by its rank among the module's calls: a call
made only at some input sizes (``if y.shape[-1] > 64: ...``) takes no other call's
place; one that never ran in the calibration pass stays global, and a ``UserWarning``
names its file and line.

The rule (what is a site):

* ``torch.mean`` / ``Tensor.mean`` of a 4-D floating map over exactly its two spatial
  dims (2 and 3, negative indices allowed), without ``dtype``: kind ``se``. With
  ``keepdim=True`` it converts to a local mean map; with ``keepdim=False`` it yields one
  value per channel (N, C) for code that needs a vector, and ``convert`` reports it by
  name (as an unsafe ``nn.AdaptiveAvgPool2d``), asking for ``skip=`` or ``keepdim=True``.
* ``F.adaptive_avg_pool2d(x, 1)`` (or ``(1, 1)``) of a 4-D map: kind ``se``.
* ``F.instance_norm`` of a 4-D map with ``use_input_stats=True``: kind ``in``.
* ``F.layer_norm`` of a 4-D map over (C, H, W) (``normalized_shape == x.shape[1:]``): kind
  ``in`` (its statistics are the per-sample mean and variance over channels and
  positions; the probe records their per-channel parts, as for instance norm).

The rule cannot tell spatial axes from others: a 4-D tensor whose dims 2 and 3 are not
(H, W) (e.g. (N, heads, c, HW) inside an attention) would qualify; ``list_sites`` shows
where each site is, and ``skip=`` leaves one global. A probe hook or any user hook on a
*declared* site that itself takes a spatial mean is counted as that module's own call.

Every other call is left alone: a mean over channels, over one axis, over all of a
tensor (a loss), of a 3-D tensor, a layer norm over the channels only (Restormer's), any
call on a 1 x 1 map (it aggregates nothing: GCNet's ``nn.LayerNorm([C // 4, 1, 1])`` on
its pooled context, whose per-channel std would be 0; :data:`MIN_PIXELS`), and
any call made inside a site module itself (``nn.InstanceNorm2d`` calls
``F.instance_norm``; it is already a site). Not recognised: a mean built by hand
(``x.sum((2, 3)) / (h * w)``), two successive one-axis means, ``torch.var_mean``;
declare such a module as a site (``convert(..., sites={"name": "se"})``).

Example::

    from tlc_probe.functional import attach_functional_sites

    attach_functional_sites(model, size=64)       # ['body.0.ca#mean0', ...]
    [s.name for s in list_sites(model)]           # now includes them
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .sites import Site, example_input, execution_order, site_kind, site_name
from .tensors import eval_mode

#: The functions watched, by the name used in site names.
FUNCTIONS: dict[str, tuple[Any, ...]] = {
    "mean": (torch.mean, torch.Tensor.mean),
    "adaptive_avg_pool2d": (F.adaptive_avg_pool2d,),
    "instance_norm": (F.instance_norm,),
    "layer_norm": (F.layer_norm,),
}
_FAMILY = {f: name for name, fs in FUNCTIONS.items() for f in fs}

_SIGNATURES = {
    "instance_norm": inspect.signature(F.instance_norm),
    "layer_norm": inspect.signature(F.layer_norm),
}

#: Attribute of the root module that holds its :class:`FunctionalSites` once attached.
ROUTER_ATTR = "_tlc_functional_sites"


def _spatial(x: object, dims: object) -> bool:
    if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()):
        return False
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, Sequence) or not all(isinstance(d, int) for d in dims):
        return False
    return len(dims) == 2 and {d % 4 for d in dims} == {2, 3}


#: Fewest pixels (H x W) a map must have for a call on it to be a site: a mean or a norm
#: over one pixel aggregates nothing.
MIN_PIXELS = 2


def qualifying_call(family: str, args: tuple, kwargs: dict) -> tuple[str, tuple] | None:
    """(kind, positional arguments) when a call of ``family`` with ``args``/``kwargs``
    is a global aggregation by the rule of this module's docstring, else ``None``. The
    positional arguments are the call's own, bound in the function's order (what the
    proxy is called with)."""
    call = _qualifying(family, args, kwargs)
    return call if call is not None and _on_a_map(call) else None


def _on_a_map(call: tuple[str, tuple]) -> bool:
    """Whether a qualifying call's input has at least :data:`MIN_PIXELS` pixels."""
    x = call[1][0]
    return x.shape[-2] * x.shape[-1] >= MIN_PIXELS


def _qualifying(family: str, args: tuple, kwargs: dict) -> tuple[str, tuple] | None:
    if family == "mean":
        if set(kwargs) - {"dim", "keepdim"} or len(args) > 3:
            return None  # dtype=, out=: left alone
        x = args[0] if args else None
        dims = args[1] if len(args) > 1 else kwargs.get("dim")
        keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        if not isinstance(keepdim, bool) or not _spatial(x, dims):
            return None
        return "se", (x, tuple(dims), keepdim)
    if family == "adaptive_avg_pool2d":
        x = args[0] if args else kwargs.get("input")
        size = args[1] if len(args) > 1 else kwargs.get("output_size")
        sizes = (size,) if isinstance(size, int) else tuple(size) if size is not None else ()
        if not (isinstance(x, torch.Tensor) and x.dim() == 4) or sizes not in ((1,), (1, 1)):
            return None
        return "se", (x, 1)
    try:
        bound = _SIGNATURES[family].bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    pos = tuple(bound.arguments.values())
    x = pos[0]
    if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.is_floating_point()):
        return None
    if family == "instance_norm":
        return ("in", pos) if bound.arguments["use_input_stats"] else None
    shape = bound.arguments["normalized_shape"]
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return ("in", pos) if shape == tuple(x.shape[1:]) else None


# -- proxies: the sites, computing exactly the calls they stand for ---------------------


class FunctionalSite(nn.Module):
    """Base of the proxy modules: ``global_kind`` is the site kind, ``tlc_function`` the
    watched function's name. No parameters, no buffers (the state_dict is unchanged)."""

    global_kind: str = ""
    tlc_function: str = ""


class FunctionalMean(FunctionalSite):
    """``torch.mean(x, dims, keepdim)`` over the spatial dims: (N, C, H, W) -> (N, C, 1,
    1) or, with ``keepdim=False``, (N, C). ``keepdim`` is that of the calls seen."""

    global_kind = "se"
    tlc_function = "mean"

    def __init__(self, keepdim: bool) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor, dims=(2, 3), keepdim: bool | None = None) -> torch.Tensor:
        return torch.mean(x, dim=dims, keepdim=self.keepdim if keepdim is None else keepdim)

    def extra_repr(self) -> str:
        return f"keepdim={self.keepdim}"


class FunctionalAvgPool(FunctionalSite):
    """``F.adaptive_avg_pool2d(x, 1)``: (N, C, H, W) -> (N, C, 1, 1)."""

    global_kind = "se"
    tlc_function = "adaptive_avg_pool2d"

    def forward(self, x: torch.Tensor, output_size=1) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, output_size)


class FunctionalInstanceNorm(FunctionalSite):
    """``F.instance_norm`` with the arguments of the call: (N, C, H, W) -> same shape."""

    global_kind = "in"
    tlc_function = "instance_norm"

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        """``args``: the call's (running_mean, running_var, weight, bias,
        use_input_stats, momentum, eps)."""
        return F.instance_norm(x, *args)

    @staticmethod
    def with_stats(args: tuple, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """The call's output with the per-channel ``mean`` and ``var`` (C,) in place of
        the input's own (what reliance freezes)."""
        x, weight, bias, eps = args[0], _arg(args, 3), _arg(args, 4), _arg(args, 7, 1e-5)
        y = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + eps)
        if weight is not None:
            y = y * weight.view(1, -1, 1, 1)
        return y + bias.view(1, -1, 1, 1) if bias is not None else y


class FunctionalLayerNorm(FunctionalSite):
    """``F.layer_norm(x, (C, H, W), weight, bias, eps)``: (N, C, H, W) -> same shape."""

    global_kind = "in"
    tlc_function = "layer_norm"

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        """``args``: the call's (normalized_shape, weight, bias, eps)."""
        return F.layer_norm(x, *args) if args else F.layer_norm(x, x.shape[1:])

    @staticmethod
    def with_stats(args: tuple, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """The call's output with moments built from per-channel ``mean`` and ``var``
        (C,): mean over channels of the means, and of the variances plus the spread of
        the means (the moments over (C, H, W) that they imply)."""
        x, weight, bias, eps = args[0], _arg(args, 2), _arg(args, 3), _arg(args, 4, 1e-5)
        m = mean.mean()
        v = var.mean() + (mean - m).square().mean()
        y = (x - m) / torch.sqrt(v + eps)
        if weight is not None:
            y = y * weight
        return y + bias if bias is not None else y


def _arg(args: tuple, i: int, default: Any = None) -> Any:
    return args[i] if len(args) > i else default


def _proxy(family: str, pos: tuple) -> FunctionalSite:
    if family == "mean":
        return FunctionalMean(keepdim=pos[2])
    if family == "adaptive_avg_pool2d":
        return FunctionalAvgPool()
    return FunctionalInstanceNorm() if family == "instance_norm" else FunctionalLayerNorm()


# -- the mode that finds and routes the calls --------------------------------------------

_TORCH_PREFIX = os.path.join(os.path.dirname(torch.__file__), "")


def _call_site(module: nn.Module) -> tuple[tuple[str, int], ...]:
    """Where the intercepted call is made: the frames outside torch and this module from
    the call up to ``module``'s own ``forward``, each as (qualified function name, line
    relative to the function's first line) — so a helper function called from two places
    gives two call sites, and the key does not depend on where the code is installed.
    Without ``module``'s frame (a forward not written in Python), the innermost frame."""
    frame = sys._getframe(2)
    chain: list[tuple[str, int]] = []
    while frame is not None:
        code = frame.f_code
        if not (code.co_filename.startswith(_TORCH_PREFIX) or code.co_filename == __file__):
            chain.append((code.co_qualname, frame.f_lineno - code.co_firstlineno))
            if frame.f_locals.get("self") is module:
                return tuple(chain)
        frame = frame.f_back
    return tuple(chain[:1])


class _Mode(TorchFunctionMode):
    def __init__(self, owner: FunctionalSites) -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self.owner.handle(func, args, kwargs or {})


class FunctionalSites:
    """The functional sites of one model: finds them (``discover``) and routes their
    calls through the proxies (``install``). Held by the root module under
    :data:`ROUTER_ATTR`; its hooks are bound methods, so ``copy.deepcopy`` of the model
    copies it consistently. Use :func:`attach_functional_sites`.

    One forward pass at a time: the stack of running modules is the model's, not the
    thread's (two threads running one converted model at once, or ``nn.DataParallel``
    replicas, would mix their stacks). A pass interrupted by ``KeyboardInterrupt`` leaves
    the mode active until the root module is called again (:meth:`reset`)."""

    def __init__(self) -> None:
        self.discovering = False
        self.found: dict[tuple[int, str], tuple[nn.Module, str, tuple]] = {}
        self.sites: list[tuple[str, str]] = []  # (owner's qualified name, proxy attribute)
        self._stack: list[tuple[nn.Module, dict[tuple, int]]] = []
        self._mode: _Mode | None = None
        self._unseen: set[tuple[str, int]] = set()  # call sites already warned about

    def reset(self) -> None:
        """Forget a forward pass that never ended: a ``KeyboardInterrupt`` (no
        ``Exception``) skips the always-called hooks, leaving the stack and the mode."""
        self._stack.clear()
        self._exit_mode()

    def _exit_mode(self) -> None:
        mode, self._mode = self._mode, None
        modes = torch.overrides._get_current_function_mode_stack()
        if mode is not None and modes and modes[-1] is mode:
            mode.__exit__(None, None, None)

    # hooks -------------------------------------------------------------------------
    def _pre(self, module: nn.Module, _args) -> None:
        if self._stack and module.__dict__.get(ROUTER_ATTR) is self:
            self.reset()  # the root starts a pass while the last one never ended
        self._stack.append((module, {}))
        if len(self._stack) == 1:
            self._mode = _Mode(self)
            self._mode.__enter__()

    def _post(self, module: nn.Module, _args, _out) -> None:
        while self._stack:  # (an inner module that raised has popped itself already)
            top, _ = self._stack.pop()
            if top is module:
                break
        if not self._stack:
            self._exit_mode()

    def install(self, model: nn.Module) -> None:
        """Put this object's hooks on every module of ``model`` that lacks them (also on
        modules swapped in later: ``convert`` calls it again)."""
        for m in model.modules():
            if not any(getattr(h, "__self__", None) is self for h in m._forward_pre_hooks.values()):
                m.register_forward_pre_hook(self._pre)
                m.register_forward_hook(self._post, always_call=True)

    def remove(self, model: nn.Module) -> None:
        """Remove this object's hooks from every module of ``model``."""
        for m in model.modules():
            for hooks in (m._forward_pre_hooks, m._forward_hooks):
                for key in [k for k, h in hooks.items() if getattr(h, "__self__", None) is self]:
                    del hooks[key]
                    m._forward_hooks_always_called.pop(key, None)

    # the mode's handler ---------------------------------------------------------------
    def handle(self, func, args: tuple, kwargs: dict):
        family = _FAMILY.get(func)
        if family is None or not self._stack:
            return func(*args, **kwargs)
        module, counts = self._stack[-1]
        if site_kind(module) is not None:  # inside a site (its own code): not a call site
            return func(*args, **kwargs)
        # a call is known by where its code is (file, line) and how often that line has
        # run in this forward of the module, so that calls made only at some input sizes
        # (or only on 1 x 1 maps, which the shape rule alone numbers too) take no other
        # call's place
        call = _qualifying(family, args, kwargs)
        if call is None:
            return func(*args, **kwargs)
        where = _call_site(module)
        occurrence = counts.get((family, where), 0)
        counts[(family, where)] = occurrence + 1
        key = (family, where, occurrence)
        if self.discovering:
            if _on_a_map(call):  # not on a 1 x 1 map
                self.found.setdefault((id(module), key), (module, family, call[1]))
            return func(*args, **kwargs)
        proxy = next(
            (p for p in module._modules.values() if getattr(p, "call_site", None) == key), None
        )
        if proxy is None:  # a call the calibration pass did not see: left alone
            if where not in self._unseen and _on_a_map(call):
                self._unseen.add(where)
                name, line = where[0] if where else ("?", 0)
                warnings.warn(
                    f"a global {family} in {name} (line {line} of it) of "
                    f"{type(module).__name__} did not run in the calibration pass (it runs "
                    "only at some input sizes): it stays global",
                    UserWarning,
                    stacklevel=2,
                )
            return func(*args, **kwargs)
        return proxy(*call[1])


def attach_functional_sites(
    model: nn.Module,
    example: torch.Tensor | None = None,
    *,
    size: int | tuple[int, int] = 64,
    in_channels: int = 3,
) -> list[str]:
    """Find the functional global aggregations of ``model`` and make them sites.

    One forward pass (eval mode, ``no_grad``, every submodule's mode restored) of
    ``example`` (default: :func:`~tlc_probe.sites.example_input` of ``size``) watches the
    calls named in this module's docstring. Each qualifying call gets a proxy module under
    ``<owner>.#<function><index>`` and every later call is routed through it. With no such
    call the model is left untouched (no hook stays). Calling it again on a model that
    has them returns their names (no second pass).

    Args:
        model: any module whose forward takes one (N, C, H, W) tensor; modified in place
            (proxies added; ``state_dict`` and outputs unchanged).
        example: the input of the pass.
        size: (H, W) of the default input (int for a square).
        in_channels: channels of the default input.

    Returns:
        The functional sites' names (``owner#function<index>``), in the order first
        called. A proxy lost since (``copy.deepcopy`` rebuilds einops' layers from their
        recipe, without added children) is found again by a new pass.
    """
    router = getattr(model, ROUTER_ATTR, None)
    fresh = not isinstance(router, FunctionalSites)
    if fresh:
        router = FunctionalSites()
    else:
        router.install(model)
        if all(_has_proxy(model, owner, attr) for owner, attr in router.sites):
            return [site_name(f"{owner}.{attr}") for owner, attr in router.sites]
        # a proxy got lost (a module whose copy is rebuilt from its own recipe, as
        # einops' layers are by copy.deepcopy): find the calls again, keep what is there
        if any(getattr(type(m), "tlc_kind", None) for m in model.modules()):
            warnings.warn(
                "a functional site's proxy of this TLC-converted model was lost (a copy "
                "rebuilt a module from its recipe); it is found again as a global site: "
                "convert the original model instead of copying a converted one",
                UserWarning,
                stacklevel=2,
            )
    router.discovering = True
    router.install(model)
    x = example if example is not None else example_input(model, size, in_channels)
    try:
        with eval_mode(model), torch.no_grad():
            model(x.clone())  # (some models scale their input in place)
    except BaseException:
        router.reset()
        if fresh:
            router.remove(model)
        raise
    finally:
        router.discovering = False
    found, router.found = router.found, {}
    if not found and fresh:
        router.remove(model)
        return []
    names = {id(m): n for n, m in model.named_modules()}
    for (_, call_site), (module, family, pos) in found.items():
        if any(getattr(p, "call_site", None) == call_site for p in module._modules.values()):
            continue  # (a proxy found again after a copy lost another one)
        index = sum(getattr(p, "tlc_function", None) == family for p in module._modules.values())
        while (attr := f"#{family}{index}") in module._modules:
            index += 1
        proxy = _proxy(family, pos).train(module.training)
        proxy.call_site = call_site  # where the call it stands for is made
        module.add_module(attr, proxy)
        if (key := (names[id(module)], attr)) not in router.sites:
            router.sites.append(key)
    object.__setattr__(model, ROUTER_ATTR, router)
    router.install(model)
    return [site_name(f"{owner}.{attr}") for owner, attr in router.sites]


def _has_proxy(model: nn.Module, owner: str, attr: str) -> bool:
    try:
        return attr in model.get_submodule(owner)._modules
    except AttributeError:
        return False


def find_sites(
    model: nn.Module,
    example: torch.Tensor | None = None,
    *,
    size: int | tuple[int, int] = 64,
    in_channels: int = 3,
    extra: Mapping[str, str] | None = None,
) -> list[Site]:
    """Every site of ``model`` with its execution depth, functional ones included:
    :func:`attach_functional_sites` then :func:`~tlc_probe.sites.execution_order` (one
    pass each, on ``example`` or a random input of ``size``). ``extra`` declares sites,
    {qualified module name: kind}.

    Example::

        [(s.name, s.kind, s.depth) for s in find_sites(model, size=256)]
    """
    if example is None:
        example = example_input(model, size, in_channels)
    attach_functional_sites(model, example)
    return execution_order(model, example, extra=extra)
