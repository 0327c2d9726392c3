"""Which of spandrel's architectures have global sites tlc-probe finds, and do they convert?

For every architecture spandrel registers, the script builds its model class with its
default arguments and random weights, hands that state dict to spandrel's loader (the
path a user's checkpoint takes), finds the sites (modules and functional calls) with one
forward pass at a small size, converts the model (train_size = that size) and runs the
converted model at 1.5x that size. Nothing is downloaded.

    python scripts/spandrel_sites.py --out docs/spandrel_sites.md

Writes a markdown table (architecture, parameters, sites by kind, functional sites, the
conversion's outcome, seconds) and prints it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from tlc_probe import convert
from tlc_probe.functional import find_sites
from tlc_probe.models.foreign import import_spandrel


def _candidates(arch_id: str, package: str) -> list[type[nn.Module]]:
    pkg = importlib.import_module(f"spandrel.architectures.{package}")
    out = []
    for value in vars(pkg).values():
        if inspect.isclass(value) and issubclass(value, nn.Module):
            if value.__module__.startswith(f"spandrel.architectures.{package}."):
                out.append(value)
    # the class named like the architecture first
    return sorted(out, key=lambda c: c.__name__.lower() not in (arch_id.lower(), package.lower()))


def _size(req, base: int) -> int:
    m = max(1, req.multiple_of)
    return max(req.minimum, -(-base // m) * m)


def survey(arch_id: str, package: str, base: int) -> dict:
    """One row of the table for spandrel architecture ``arch_id`` (in ``package``)."""
    spandrel = import_spandrel()
    row = {"architecture": arch_id}
    t0 = time.perf_counter()
    try:
        classes = _candidates(arch_id, package)
        if not classes:
            raise ValueError("no model class found")
        torch.manual_seed(0)
        net = classes[0]()
        desc = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
        model = desc.model.eval()
        row["params_M"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        row["scale"] = desc.scale
        # the first of a few sizes the model runs at (window transformers want multiples
        # of their window, which the size requirements do not always say)
        for ts in dict.fromkeys(_size(desc.size_requirements, b) for b in (base, 56, 96)):
            x = torch.rand(1, desc.input_channels, ts, ts)
            try:
                with torch.no_grad():
                    sites = [s for s in find_sites(model, x) if s.executed]
                break
            except RuntimeError:
                if ts == _size(desc.size_requirements, 96):
                    raise
        row["size"] = ts
        for kind in ("in", "se", "attn"):
            row[kind] = sum(s.kind == kind for s in sites)
        row["functional"] = sum(s.functional for s in sites)
        if not sites:
            row["convert"] = "no global site"
        else:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                tlc = convert(model, train_size=ts, in_channels=desc.input_channels)
                big = _size(desc.size_requirements, ts * 3 // 2)
                tlc(torch.rand(1, desc.input_channels, big, big))
            row["convert"] = "ok"
    except Exception as e:  # a survey: every architecture gets its row
        first = (str(e).splitlines() or [""])[0][:90]
        row["convert"] = f"{type(e).__name__}: {first}".rstrip(": ")
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/spandrel_sites.md", help="markdown file to write")
    p.add_argument("--size", type=int, default=64, help="calibration size, px (default: 64)")
    p.add_argument("--only", nargs="*", help="architecture ids (default: all)")
    args = p.parse_args()
    spandrel = import_spandrel()
    # architecture id -> its package under spandrel.architectures
    packages = {
        str(a.architecture.id): type(a.architecture).__module__.split(".")[2]
        for a in spandrel.MAIN_REGISTRY.architectures()
    }
    rows = [
        survey(arch, pkg, args.size)
        for arch, pkg in packages.items()
        if not args.only or arch in args.only
    ]
    cols = ["architecture", "params_M", "scale", "size", "in", "se", "attn", "functional"]
    cols += ["convert", "seconds"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    table = "\n".join(lines)
    head = (
        f"spandrel {spandrel.__version__}, torch {torch.__version__}: each architecture's "
        "default model, random weights; sites found in one pass at `size` px (the first "
        f"of {args.size}, 56, 96 the model runs at), then `convert(train_size=size)` and "
        "one pass of the converted model at 1.5 x size (`python scripts/spandrel_sites.py`)."
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(f"# Global sites in spandrel's architectures\n\n{head}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
