"""``GridMap``: a fast local pool's output kept on its block grid until a full map is needed
(and ``ValidMap``: the exact pool's output kept as its valid windows).

A squeeze-excitation block computes x * head(pool(x)), with head a chain of 1x1
convolutions and pointwise activations. Under TLC the pool returns a full (N, C, H, W)
map and the head runs at full resolution, which on a CPU costs more than the pooling
itself (MPRNet: about +25 % of the whole network, against +10 % for the pool). The fast
pool's map is M_h @ grid @ M_w^T (see :func:`tlc_probe.tlc.box.fast_factors`), a linear
interpolation of a grid r_h r_w times smaller. A ``GridMap`` is that grid, carrying
M_h and M_w: 1x1 convolutions (exactly: they mix channels and the interpolation rows
sum to 1) and pointwise activations (approximately: evaluated at the grid points and
interpolated, instead of evaluated on interpolated values) run on the grid, and any
other operation first expands it to the full map, so the code after the pool sees what
a plain fast pool returns. Only the activation-after-interpolation swap differs from
``fast_imp``; with the published nearest-neighbour upsampling it would be exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_map

from .box import (
    channel_mm,
    channels_last,
    expand_factors,
    needs_grad,
    replicate_bands,
    replicate_to,
)

#: Pointwise functions evaluated on the grid (nn.ReLU, nn.Sigmoid, ... call these).
_POINTWISE = {
    F.relu,
    torch.relu,
    torch.relu_,
    torch.Tensor.relu,
    torch.Tensor.relu_,
    torch.sigmoid,
    torch.Tensor.sigmoid,
    torch.Tensor.sigmoid_,
    torch.tanh,
    torch.Tensor.tanh,
    F.gelu,
    F.silu,
    F.hardsigmoid,
    F.hardswish,
    F.hardtanh,
    F.leaky_relu,
    F.prelu,
}
_SHAPE = {torch.Tensor.size, torch.Tensor.dim, torch.Tensor.shape.__get__}
_META = {
    getattr(torch.Tensor, a).__get__
    for a in ("dtype", "device", "requires_grad", "is_cuda", "layout", "grad_fn", "is_leaf", "ndim")
}
_MUL = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__}


_INPLACE_DUNDERS = {
    f"__i{op}__"
    for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor")
} | {"__setitem__", "__ilshift__", "__irshift__", "__imatmul__"}


def writes_into(func, kwargs) -> bool:
    """Whether ``func`` (not a grid-safe one) would write into its first argument."""
    name = getattr(func, "__name__", "")
    if name in _INPLACE_DUNDERS or kwargs.get("inplace") or "out" in kwargs:
        return True
    return name.endswith("_") and not name.startswith("__")


def _conv_options(args, kwargs) -> dict:
    names = ("bias", "stride", "padding", "dilation", "groups")
    return dict(zip(names, args[2:], strict=False)) | kwargs


def _conv1x1_mm(x: torch.Tensor, w2d: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution (groups 1) of ``x`` (N, C_in, h, w) by ``w2d`` (C_out, C_in) as
    matrix products (:func:`~tlc_probe.tlc.box.channel_mm`); equal to ``F.conv2d`` up to
    the order of the C_in additions."""
    out = channel_mm(w2d, x)
    if bias is not None:
        out.add_(bias.reshape(1, -1, 1, 1))
    return out


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (torch < 2.4 has no argument form)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def head_op(func, args, kwargs) -> torch.Tensor:
    """``func(*args, **kwargs)``, a pointwise op or a 1x1 convolution of ``args[0]`` (a map
    of any size), with a plain 1x1 convolution (groups 1) run by :func:`_conv1x1_mm`
    unless autograd records it, autocast is on or the dtypes differ (then ``F.conv2d``
    with its own dtype rules). Call with subclass dispatch disabled."""
    conv = conv1x1_weight(func, args, kwargs)
    if conv is not None:
        return _conv1x1_mm(args[0].as_subclass(torch.Tensor), *conv)
    return func(*args, **kwargs)


def conv1x1_weight(func, args, kwargs) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight (C_out, C_in), bias (C_out,) or None) when ``func(*args, **kwargs)`` is a
    1x1 convolution of ``args[0]`` (groups 1) that can run as a matrix product: it writes
    into a new tensor (``out=``), so not under autograd, and not where autocast or mixed
    dtypes make the convolution's own dtype rules apply. Else None."""
    if not _is_1x1_conv(func, args, kwargs):
        return None
    opts = _conv_options(args, kwargs)
    x, weight, bias = args[0], args[1], opts.get("bias")
    if (
        opts.get("groups", 1) != 1
        or needs_grad(x, weight, bias)
        or _autocast_on(x.device.type)
        or x.dtype != weight.dtype
        or (bias is not None and bias.dtype != x.dtype)
    ):
        return None
    return weight.reshape(weight.shape[0], -1), bias


def _is_1x1_conv(func, args, kwargs) -> bool:
    if func is not F.conv2d or len(args) < 2:
        return False
    weight = args[1]
    opts = _conv_options(args, kwargs)
    stride, padding = opts.get("stride", 1), opts.get("padding", 0)
    return (
        tuple(weight.shape[-2:]) == (1, 1)
        and stride in (1, (1, 1), [1, 1])
        and padding in (0, (0, 0), [0, 0], "valid", "same")
    )


class GridMap(torch.Tensor):
    """A (N, C, G_h, G_w) grid standing for the (N, C, H, W) map M_h @ grid @ M_w^T.

    Create with :meth:`wrap`. ``shape``, ``size()`` and ``dim()`` report the full map;
    pointwise activations and 1x1 convolutions return GridMaps; every other operation
    receives the expanded map (computed once per GridMap). In-place operations other
    than the pointwise ones raise, since they could not reach the grid.
    """

    _m_h: torch.Tensor
    _m_w: torch.Tensor
    _full: torch.Tensor | None

    @staticmethod
    def wrap(grid: torch.Tensor, m_h: torch.Tensor, m_w: torch.Tensor) -> GridMap:
        """The GridMap of ``grid`` (N, C, G_h, G_w) with M_h (H, G_h) and M_w (W, G_w)."""
        out = grid.as_subclass(GridMap)
        out._m_h, out._m_w, out._full = m_h, m_w, None
        return out

    def full(self) -> torch.Tensor:
        """The expanded (N, C, H, W) map, a plain tensor."""
        if self._full is None:
            with torch._C.DisableTorchFunctionSubclass():
                self._full = self._expand()
        return self._full

    def _expand(self) -> torch.Tensor:
        # (called with subclass dispatch disabled) a fresh full map
        return expand_factors(self, self._m_h, self._m_w)

    def _full_hw(self) -> tuple[int, int]:
        return self._m_h.shape[0], self._m_w.shape[0]

    def _head_op(self, func, args, kwargs) -> torch.Tensor:
        # (called with subclass dispatch disabled) a pointwise op or 1x1 conv on the grid
        return func(*args, **kwargs)

    def _times(self, other: torch.Tensor) -> torch.Tensor:
        # (called with subclass dispatch disabled) other * the full map, ``other`` of the
        # full map's shape or broadcast to it, as a fresh tensor (in ``other``'s layout
        # when that is channels last: the next convolution then needs no reorder)
        full = self._expand()
        if channels_last(other) and other.shape == full.shape and other.dtype == full.dtype:
            return torch.mul(full, other, out=torch.empty_like(other))
        return full.mul_(other)

    def _rewrap(self, out: torch.Tensor) -> GridMap:
        return GridMap.wrap(out, self._m_h, self._m_w)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else None
        if isinstance(first, GridMap):
            if func in _SHAPE:
                n, c = first.as_subclass(torch.Tensor).shape[:2]
                full = torch.Size((n, c, *first._full_hw()))
                if func is torch.Tensor.dim:
                    return 4
                if func is torch.Tensor.size and (len(args) > 1 or "dim" in kwargs):
                    return full[args[1] if len(args) > 1 else kwargs["dim"]]
                return full
            if func in _META:
                with torch._C.DisableTorchFunctionSubclass():
                    return func(*args, **kwargs)
            others = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, GridMap)]
            if not others and (func in _POINTWISE or _is_1x1_conv(func, args, kwargs)):
                with torch._C.DisableTorchFunctionSubclass():
                    out = first._head_op(func, args, kwargs)
                if out is first:  # in place on the grid: the cached expansion is stale
                    first._full = None
                    return first
                return first._rewrap(out)
            if writes_into(func, kwargs):
                raise RuntimeError(
                    f"in-place {func.__name__} on the deferred output of a fast TLC pool; "
                    "convert with grid_head=False for this model"
                )

        if func in _MUL and len(args) == 2 and not kwargs:
            # x * attention, the end of every squeeze-excitation block: expand into a
            # fresh map and multiply in place (one new map instead of two).
            grids = [a for a in args if isinstance(a, GridMap)]
            g = grids[0] if len(grids) == 1 and grids[0]._full is None else None
            o = args[1] if args[0] is g else args[0]
            if g is not None and isinstance(o, torch.Tensor):
                shape = g.shape
                with torch._C.DisableTorchFunctionSubclass():
                    fits = o.dtype == g.dtype and not needs_grad(o, g)
                    if fits and _broadcasts_to(o.shape, shape):
                        return g._times(o)

        def unwrap(a):
            return a.full() if isinstance(a, GridMap) else a

        with torch._C.DisableTorchFunctionSubclass():
            return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))


class ValidMap(GridMap):
    """The exact local pool's output kept as its map of valid windows
    (N, C, H - k_h + 1, W - k_w + 1) until a full map is needed; it stands for that map
    replicate-padded to (H, W) (:func:`tlc_probe.tlc.box.replicate_to`).

    Replication copies values, so 1x1 convolutions *and* pointwise activations commute
    with it exactly: the squeeze-excitation head runs on the valid map (for a window of
    384 on a 416 x 608 map: 33 x 225 instead of 416 x 608) and the result equals the
    plain exact path (the paper's official CALayer pads after its head for the same
    reason), up to float rounding: the head's 1x1 convolutions run as matrix products
    (:func:`_conv1x1_mm`; not under autograd) and add in another order. ``x * head``
    multiplies region by region into one new map, never building the padded one (the
    very same products). Everything else about a :class:`GridMap` holds.
    """

    _size: tuple[int, int]

    @staticmethod
    def wrap_valid(valid: torch.Tensor, size: tuple[int, int]) -> ValidMap:
        """The ValidMap of ``valid`` (N, C, V_h, V_w) standing for its (H, W) padding."""
        out = valid.as_subclass(ValidMap)
        out._size, out._full = (int(size[0]), int(size[1])), None
        return out

    def _expand(self) -> torch.Tensor:
        return replicate_to(self.as_subclass(torch.Tensor), self._size).contiguous()

    def _full_hw(self) -> tuple[int, int]:
        return self._size

    def _rewrap(self, out: torch.Tensor) -> ValidMap:
        return ValidMap.wrap_valid(out, self._size)

    def _head_op(self, func, args, kwargs) -> torch.Tensor:
        return head_op(func, args, kwargs)

    def _times(self, other: torch.Tensor) -> torch.Tensor:
        """``other`` * the padded map without building the padded map: each of the 3 x 3
        regions (border bands, corners, the valid centre) is one broadcast multiply
        writing into its part of the result, so the full map is read once and written
        once. The same products as expanding first."""
        valid = self.as_subclass(torch.Tensor)
        out = torch.empty(valid.shape[:-2] + self._size, dtype=other.dtype, device=valid.device)
        for rows, v_rows in replicate_bands(self._size[0], valid.shape[-2]):
            for cols, v_cols in replicate_bands(self._size[1], valid.shape[-1]):
                target = out[..., rows, cols]
                repeated = valid[..., v_rows, v_cols].expand(target.shape)  # a border: 1 wide
                torch.mul(broadcast_part(other, rows, cols), repeated, out=target)
        return out


def _broadcasts_to(small: torch.Size, shape: torch.Size) -> bool:
    """Whether a tensor of shape ``small`` broadcasts to ``shape`` unchanged (what
    ``torch.broadcast_shapes(shape, small) == shape`` says, without its cost)."""
    return len(small) <= len(shape) and all(
        a in (1, b) for a, b in zip(reversed(small), reversed(shape), strict=False)
    )


def broadcast_part(t: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    """The part of ``t`` (broadcastable to an (..., H, W) map) that meets the map's
    ``rows`` x ``cols``: size-1 (broadcast) trailing dimensions are kept whole."""
    index = []
    if t.dim() >= 2:
        index.append(rows if t.shape[-2] != 1 else slice(None))
    if t.dim() >= 1:
        index.append(cols if t.shape[-1] != 1 else slice(None))
    return t[(..., *index)] if index else t
