"""``FusedMap``: the exact local pool's output left uncomputed until the squeeze-excitation
multiply, which then computes pool, head and product in one pass of row bands.

A squeeze-excitation block computes x * head(pool(x)), head a chain of 1x1 convolutions
and pointwise activations. A :class:`~tlc_probe.tlc.gridmap.ValidMap` already runs the
head on the valid windows only; what is left is memory traffic: the box mean's passes
over full-size maps, the head's maps and the product each go through memory. A
``FusedMap`` records the pool's input and window and, as the head runs, each of its ops
(nothing is computed). At ``x * head`` it walks the valid windows in row bands
(:func:`~tlc_probe.tlc.stream.box_mean_bands`), runs the recorded head on each band and
writes that band's rows of the product (border rows and columns repeat the edge
windows, as replicate padding does), so every intermediate is the size of one band and
stays in cache. A head that starts with a 1x1 convolution narrowing the channels has it
applied to the pool's input before the window sums (``project`` of ``box_mean_bands``:
one C / r-channel map of full size). The numbers are the
exact path's up to float rounding.

Any other use of the map (a 3x3 convolution, an addition, ``.view``) gets the full map,
written by the same banded pass (the head's values instead of the product), and proceeds
on that. Under autograd (head weights that need gradients) the map is computed the plain
way, on the valid windows, and multiplied out of place. The pool's input must not change
in place before the map is used (checked: ``RuntimeError``).
"""

from __future__ import annotations

import torch

from .box import (
    box_mean_valid,
    map_format,
    needs_grad,
    replicate_band_rows,
    replicate_bands,
    replicate_to,
)
from .gridmap import GridMap, broadcast_part, conv1x1_weight, head_op, writes_into
from .stream import box_mean_bands


def _first_projection(source: torch.Tensor, ops: tuple) -> tuple[tuple | None, tuple]:
    """((weight, bias), the other ops) when the head starts with a 1x1 convolution that
    narrows the channels (an SE head's squeeze), else (None, ops). That convolution then
    runs on the pool's input before the window sums (a mean is linear), so the banded
    sums work on its fewer output channels."""
    if not ops:
        return None, ops
    func, rest, kwargs = ops[0]
    conv = conv1x1_weight(func, (source, *rest), kwargs)
    if conv is None or conv[0].shape[0] >= source.shape[1]:
        return None, ops
    return conv, ops[1:]


class FusedMap(GridMap):
    """The local means of ``source`` over ``kernel``, replicate-padded to (H, W), and the
    head ops applied to them so far, none of it computed yet.

    Create with :meth:`wrap_fused`. Shape, dtype and device are reported as those of the
    map it stands for ((N, C_out, H, W), C_out the channels after the recorded 1x1
    convolutions); 1x1 convolutions and pointwise activations return new FusedMaps (in
    place: the same one, its op recorded); ``other * map`` runs the fused pass; every
    other operation receives the computed full map.
    """

    _source: torch.Tensor
    _kernel: tuple[int, int]
    _offset: torch.Tensor
    _top: torch.Tensor | None
    _ops: tuple
    _source_version: int

    @staticmethod
    def wrap_fused(
        source: torch.Tensor,
        kernel: tuple[int, int],
        offset: torch.Tensor,
        top: torch.Tensor | None = None,
    ) -> FusedMap:
        """The FusedMap of the local means of ``source`` (N, C, H, W; finite, float32 or
        float64, not needing gradients) over ``kernel`` (fitting the map), centred on
        ``offset`` (N, C, 1, 1), each channel's mean; ``top`` (N, C, 1, W) the sums of
        its first k_h rows if known (:func:`~tlc_probe.tlc.stream.top_sums_and_mean`)."""
        out = FusedMap._make(source, kernel, offset, (), source.shape[1])
        out._top = top
        return out

    @staticmethod
    def _make(source, kernel, offset, ops, channels: int, top=None) -> FusedMap:
        with torch._C.DisableTorchFunctionSubclass():
            stub = source.new_empty(source.shape[0], channels, 0, 0)
        out = stub.as_subclass(FusedMap)
        out._source, out._kernel, out._offset, out._ops = source, kernel, offset, ops
        out._source_version, out._full, out._top = source._version, None, top
        return out

    def _full_hw(self) -> tuple[int, int]:
        return self._source.shape[-2], self._source.shape[-1]

    def _check_source(self) -> None:
        if self._source._version != self._source_version:
            raise RuntimeError(
                "the input of a fused TLC pool was modified in place before the pool's "
                "output was used; convert with fused_head=False for this model"
            )

    def _head_op(self, func, args, kwargs) -> torch.Tensor:
        op = (func, tuple(args[1:]), dict(kwargs))
        if writes_into(func, kwargs):  # in place: record it on this map
            self._ops = (*self._ops, op)
            return self
        channels = self.as_subclass(torch.Tensor).shape[1]
        if func is torch.nn.functional.conv2d:
            channels = int(args[1].shape[0])
        ops = (*self._ops, op)
        return FusedMap._make(self._source, self._kernel, self._offset, ops, channels, self._top)

    def _rewrap(self, out: torch.Tensor) -> FusedMap:
        return out  # _head_op made it

    def _apply_head(self, t: torch.Tensor, ops: tuple | None = None) -> torch.Tensor:
        """The recorded head ops (or ``ops``, a tail of them) applied to ``t``."""
        for func, rest, kwargs in self._ops if ops is None else ops:
            t = head_op(func, (t, *rest), kwargs)
        return t

    def _needs_autograd(self, *tensors: torch.Tensor) -> bool:
        params = [t for _, rest, kw in self._ops for t in (*rest, *kw.values())]
        return needs_grad(*tensors, *(t for t in params if isinstance(t, torch.Tensor)))

    def _expand(self) -> torch.Tensor:
        # (called with subclass dispatch disabled) the full map: the fused pass writing
        # the head's values, or under autograd the plain exact path on the valid map
        self._check_source()
        if self._needs_autograd():
            valid = box_mean_valid(self._source, self._kernel)
            return replicate_to(self._apply_head(valid), self._full_hw()).contiguous()
        return self._fused_pass(None)

    def _times(self, other: torch.Tensor) -> torch.Tensor:
        """``other`` * the map, ``other`` broadcastable to (N, C_out, H, W), into one new
        map by the fused pass (under autograd: the full map times ``other``)."""
        self._check_source()
        if self._needs_autograd(other):
            return self._expand().mul_(other)
        return self._fused_pass(other)

    def _fused_pass(self, other: torch.Tensor | None) -> torch.Tensor:
        """The valid means in row bands, the head on each band and that band's rows of
        the full map (times ``other`` unless None) written into one new (N, C_out, H, W)
        tensor; border rows and columns repeat the edge windows."""
        (n, c_out), (h, w) = self.as_subclass(torch.Tensor).shape[:2], self._full_hw()
        dtype = self._source.dtype if other is None else other.dtype
        fmt = map_format(self._source if other is None else other)
        out = torch.empty(
            n, c_out, h, w, dtype=dtype, device=self._source.device, memory_format=fmt
        )
        kh, kw = self._kernel
        vh, vw = h - kh + 1, w - kw + 1
        project, ops = _first_projection(self._source, self._ops)
        bands = box_mean_bands(self._source, self._kernel, self._offset, None, project, self._top)
        for v0, means in bands:
            head = self._apply_head(means, ops)
            for rows, head_rows in replicate_band_rows(v0, head.shape[-2], h, vh):
                for cols, head_cols in replicate_bands(w, vw):
                    target = out[..., rows, cols]
                    part = head[..., head_rows, head_cols].expand(target.shape)
                    if other is None:
                        target.copy_(part)
                    else:
                        torch.mul(broadcast_part(other, rows, cols), part, out=target)
        return out
