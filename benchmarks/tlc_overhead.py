"""TLC's time overhead per shipped model at 720x1280, and where it comes from.

Run: ``python benchmarks/tlc_overhead.py [--size 720 1280] [--repeats 5] [--official]
[--only mprnet ffanet] [--layout default|channels_last]``.
For each shipped checkpoint, interleaved within each repeat after a warm-up: each
scheme's time divided by whole-image inference's in the same repeat, the median of those
paired ratios reported (a machine that slows down for a while slows both):

The implementations are forced with ``backend`` of ``tlc_probe.tlc.convert`` (``convert``
picks ``fused`` for ``mode="exact"`` and ``grid`` for ``mode="fast"`` by itself):

* ``tlc`` (exact, integral images), ``valid`` (exact with the squeeze-excitation heads on
  the map of valid windows, their 1x1 convolutions as matrix products, and the final
  multiply region by region without building the padded map; ``tlc``'s numbers up to
  float rounding), ``fused`` (exact, each squeeze-excitation block's
  local mean, head and multiply in one pass of row bands that stay in cache, and local
  channel attention in row bands; ``tlc``'s numbers up to float rounding),
  ``fast`` (the block grid), ``grid`` (the block grid with the squeeze-excitation
  heads on it);
* ``floor``: exact TLC with every local pool replaced by the identity, every local
  instance norm by the global one and every local channel attention by the global one.
  The pooled map then costs nothing but the code after it still runs at full
  resolution, so this is the least any pooling kernel could reach without moving the
  head (the SE block's 1x1 convs or linear layers and sigmoid) off the full map; for
  attention it is the global attention itself (1.00).

For Restormer (kind 'attn') ``tlc`` is the exact integral-image attention, ``fused`` the
exact attention in row bands and ``fast`` the cell-grid blend
(:mod:`tlc_probe.tlc.attention`). ``valid`` is run only for models with SE pools,
``fused`` for models with SE pools or attention, ``grid`` for SE pools whose heads are
convolutions, ``floor`` for models with pools or instance norms (for attention alone it
is whole-image inference): "-" in the table.

``--layout channels_last`` lays the weights out as the package runs a loaded checkpoint
on a CPU (:func:`tlc_probe.tensors.channels_last_on_cpu`); ``default`` (the default)
keeps PyTorch's layout. Both ratios are to whole-image inference in the same layout.

``--official`` adds MPRNet at its official width (n_feat 96, untrained: the cost does not
depend on the weights) at 360x640, to show the overhead is no tiny-width artefact.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from tlc_probe import convert, list_sites
from tlc_probe.models import build
from tlc_probe.store import build_from_checkpoint, checkpoint_dir
from tlc_probe.tensors import channels_last_on_cpu
from tlc_probe.tlc.attention import LocalChannelAttention
from tlc_probe.tlc.convert import backend, grid_head_pools
from tlc_probe.tlc.norm import LocalInstanceNorm2d
from tlc_probe.tlc.pooling import LocalAvgPool2d


def free_pools(model: nn.Module) -> nn.Module:
    """``model`` (TLC-converted) with local pools -> identity, local IN -> global IN,
    local attention -> global attention (a window covering every map)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LocalChannelAttention):
                child.kernel_size = (1 << 30, 1 << 30)
            elif isinstance(child, LocalAvgPool2d):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, LocalInstanceNorm2d):
                norm = nn.InstanceNorm2d(
                    child.num_features,
                    child.eps,
                    child.momentum,
                    affine=child.affine,
                    track_running_stats=child.track_running_stats,
                )
                norm.load_state_dict(child.state_dict())
                setattr(parent, name, norm)
    return model


def ratios(model: nn.Module, train_size: int, x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median over repeats of each scheme's time on ``x`` divided by whole-image
    inference's in the same repeat; 'whole': whole-image inference's median time in s."""

    def build(mode: str, name: str) -> nn.Module:
        with backend(name):  # the implementation, forced (convert chooses it otherwise)
            return convert(model, train_size=train_size, mode=mode)

    nets = {
        "whole": model,
        "tlc": build("exact", "plain"),
        "fast": build("fast", "plain"),
    }
    kinds = {s.kind for s in list_sites(model)}
    if "se" in kinds:
        nets["valid"] = build("exact", "valid")
    if kinds & {"se", "attn"}:
        nets["fused"] = build("exact", "fused")  # convert(model)'s default
    if grid_head_pools(model):
        nets["grid"] = build("fast", "grid")  # convert(model, mode="fast")'s default
    if kinds & {"in", "se"}:
        nets["floor"] = free_pools(build("exact", "plain"))
    ratios_of: dict[str, list[float]] = {k: [] for k in nets}
    whole: list[float] = []
    with torch.no_grad():
        for net in nets.values():
            net(x)
        names = list(nets)
        for rep in range(repeats):  # rotated order: no network always runs first
            took = {}
            for k in names[rep % len(names) :] + names[: rep % len(names)]:
                net = nets[k]
                t = time.perf_counter()
                net(x)
                took[k] = time.perf_counter() - t
            whole.append(took["whole"])
            for k in names:  # paired: each scheme against whole in the same repeat
                ratios_of[k].append(took[k] / took["whole"])
    med = {k: statistics.median(v) for k, v in ratios_of.items() if k != "whole"}
    return {"whole": statistics.median(whole)} | med


def _cell(r: dict[str, float], key: str) -> str:
    return f"{r[key]:.2f}" if key in r else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[720, 1280])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--official", action="store_true", help="add MPRNet at official width")
    ap.add_argument("--only", nargs="*", default=[], help="checkpoints whose name contains any")
    ap.add_argument("--layout", choices=["default", "channels_last"], default="default")
    args = ap.parse_args()
    x = torch.rand(1, 3, *args.size, generator=torch.Generator().manual_seed(0))
    print(
        f"{args.size[0]}x{args.size[1]}, {args.layout} layout, "
        f"median of {args.repeats} paired ratios to whole"
    )
    print(
        "| model | whole (s) | TLC | TLC, valid head | TLC, fused head | fast TLC "
        "| fast TLC, grid head | floor (free pool) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    paths = sorted(checkpoint_dir().glob("*.pt"))
    paths = [p for p in paths if not args.only or any(o in p.stem for o in args.only)]
    rows = [(p.stem, *build_from_checkpoint(p)) for p in paths]
    if args.official:
        rows.append(("mprnet-official (360x640)", build("mprnet", "official").eval(), {}))
    for label, model, meta in rows:
        if args.layout == "channels_last":
            model = channels_last_on_cpu(model)
        xi = x if meta else torch.nn.functional.interpolate(x, size=(360, 640))
        r = ratios(model, int(meta.get("train_size", 64)), xi, args.repeats)
        print(
            f"| {label} | {r['whole']:.2f} | {r['tlc']:.2f} | {_cell(r, 'valid')} | "
            f"{_cell(r, 'fused')} | {r['fast']:.2f} | {_cell(r, 'grid')} | {_cell(r, 'floor')} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
