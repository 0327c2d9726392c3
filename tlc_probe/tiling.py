"""Overlapping tiles: where they lie, what they cost, and tiled inference (the baseline
TLC is compared against, SwinIR-style)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .sizes import as_int, as_pair
from .tensors import batch_pixels, check_map


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering [0, n) with stride
    ``tile - overlap``, the last tile aligned to the border. ``[0]`` when n <= tile."""
    tile, overlap = as_int(tile, "tile"), as_int(overlap, "overlap")
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got {tile=}, {overlap=}")
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap))
    return starts + [n - tile]


def tile_edges(n: int, tile: int, overlap: int) -> list[int]:
    """Lines (index i = between pixels i - 1 and i) where an edge of a tile of
    :func:`tile_starts` lies strictly inside [0, n)."""
    edges = set()
    for s in tile_starts(n, tile, overlap):
        edges.update(e for e in (s, s + tile) if 0 < e < n)
    return sorted(edges)


def tile_pixel_ratio(h: int, w: int, tile: int, overlap: int | None) -> float:
    """Tile pixels processed / image pixels for ``tile`` px tiles overlapping by
    ``overlap`` on an ``h`` x ``w`` image: the theoretical time ratio of tiled inference
    (1.0 for ``overlap=None``, i.e. no tiling)."""
    if overlap is None:
        return 1.0
    ny, nx = len(tile_starts(h, tile, overlap)), len(tile_starts(w, tile, overlap))
    return ny * nx * min(tile, h) * min(tile, w) / (h * w)


#: Tilings beyond either limit are refused unless forced (:func:`check_tiling`).
MAX_TILES = 100_000
MAX_TILE_RATIO = 16.0


def check_tiling(
    h: int,
    w: int,
    tile: int | tuple[int, int],
    overlap: int | tuple[int, int],
    force: bool = False,
) -> int:
    """The number of tiles of ``tile`` px overlapping by ``overlap`` on an ``h`` x ``w``
    image. Unless ``force``, ``ValueError`` with the estimate when a run would explode:
    more than :data:`MAX_TILES` tiles (1-px tiles, a 1-px stride over a large image) or
    tile pixels over :data:`MAX_TILE_RATIO` times the image's (the paper's 256-px tiles
    with overlap 128 on 720 x 1280: 45 tiles, 3.2 times)."""
    (th, tw), (oh, ow) = as_pair(tile, "tile"), as_pair(overlap, "overlap", minimum=0)
    ny, nx = len(tile_starts(h, th, oh)), len(tile_starts(w, tw, ow))
    ratio = ny * nx * min(th, h) * min(tw, w) / (h * w)
    if not force and (ny * nx > MAX_TILES or ratio > MAX_TILE_RATIO):
        raise ValueError(
            f"tile {th}x{tw} with overlap {oh}x{ow} cuts a {h}x{w} image into "
            f"{ny}x{nx} = {ny * nx} tiles, {ratio:.1f} times its pixels (limits: "
            f"{MAX_TILES} tiles, {MAX_TILE_RATIO:g} times); use larger tiles or a smaller "
            "overlap, or force=True"
        )
    return ny * nx


def image_tiles(
    x: torch.Tensor, tile: int, overlap: int, force: bool = False
) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The overlapping tiles :func:`tiled_inference` runs on a (C, H, W) image:
    (top-left corners, (n_tiles, C, min(tile, H), min(tile, W)) tensor). Runaway tilings
    are refused unless ``force`` (:func:`check_tiling`)."""
    _, h, w = x.shape
    check_tiling(h, w, tile, overlap, force)
    th, tw = min(tile, h), min(tile, w)
    boxes = [(y, x0) for y in tile_starts(h, tile, overlap) for x0 in tile_starts(w, tile, overlap)]
    return boxes, torch.stack([x[:, y : y + th, x0 : x0 + tw] for y, x0 in boxes])


def tiled_inference(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | tuple[int, int] = 256,
    overlap: int | tuple[int, int] = 128,
    progress: bool = False,
    force: bool = False,
) -> torch.Tensor:
    """Run ``model`` on overlapping tiles of ``x`` and average the overlaps.

    Args:
        model: maps a batch of tiles (B, C, h, w) to (B, C', h, w) outputs, each
            sample's output its own: several tiles of ``x`` share a forward pass, up
            to :func:`~tlc_probe.tensors.batch_pixels` of ``x``'s device (a model
            that takes one sample at a time, or mixes the samples of a batch, does not
            fit).
        x: (N, C, H, W) input, any H, W >= 1.
        tile: tile size (pixels), int or (h, w); an axis shorter than the tile is run
            whole along that axis.
        overlap: pixels shared by neighbouring tiles, 0 <= overlap < tile.
        progress: show a tqdm bar over tiles.
        force: run tilings that :func:`check_tiling` refuses (over 100,000 tiles, or
            tile pixels over 16 times the image's).

    Returns:
        (N, C', H, W) tensor in ``model``'s output dtype. Each pixel is the mean of the
        outputs of all tiles containing it (accumulated in float64, so an identity model
        gives back ``x`` bit-for-bit). When one tile covers ``x`` the result is
        ``model(x)`` itself.
    """
    check_map(x)
    (th, tw), (oh, ow) = as_pair(tile, "tile"), as_pair(overlap, "overlap", minimum=0)
    h, w = x.shape[-2:]
    check_tiling(h, w, (th, tw), (oh, ow), force)
    ys, xs = tile_starts(h, th, oh), tile_starts(w, tw, ow)
    if len(ys) == 1 and len(xs) == 1:
        return _check_out(model(x), x)
    th, tw = min(th, h), min(tw, w)
    acc = None
    count = torch.zeros(1, 1, h, w, dtype=torch.float64, device=x.device)
    boxes = [(y, x0) for y in ys for x0 in xs]
    n = x.shape[0]
    # several tiles per forward pass, up to the pixel budget of x's device
    per = max(1, batch_pixels(x.device) // max(1, n * th * tw))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(boxes), desc="tiles", leave=False)
    for g in range(0, len(boxes), per):
        group = boxes[g : g + per]
        tiles = [x[..., y : y + th, x0 : x0 + tw] for y, x0 in group]
        batch = tiles[0] if len(tiles) == 1 else torch.cat(tiles)
        out = _check_out(model(batch), batch)
        if acc is None:
            acc = torch.zeros(n, out.shape[1], h, w, dtype=torch.float64, device=out.device)
            out_dtype = out.dtype
        for k, (y, x0) in enumerate(group):
            acc[..., y : y + th, x0 : x0 + tw] += out[k * n : (k + 1) * n]
            count[..., y : y + th, x0 : x0 + tw] += 1
        if bar is not None:
            bar.update(len(group))
    if bar is not None:
        bar.close()
    return (acc / count).to(out_dtype)


def _check_out(out, inp: torch.Tensor) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"tiled_inference needs a model returning one tensor, got {type(out).__name__}; "
            "wrap multi-output models so they return the final image"
        )
    if out.dim() != 4 or out.shape[0] != inp.shape[0] or out.shape[-2:] != inp.shape[-2:]:
        raise ValueError(
            f"model output {tuple(out.shape)} does not keep the tile's batch and spatial "
            f"size {tuple(inp.shape)}"
        )
    return out
