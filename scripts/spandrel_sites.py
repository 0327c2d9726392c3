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


def _candidates(arch_id: str) -> list[type[nn.Module]]:
    pkg = importlib.import_module(f"spandrel.architectures.{arch_id}")
    out = []
    for value in vars(pkg).values():
        if inspect.isclass(value) and issubclass(value, nn.Module):
            if value.__module__.startswith(f"spandrel.architectures.{arch_id}."):
                out.append(value)
    # the class named like the architecture first
    return sorted(out, key=lambda c: c.__name__.lower() != arch_id.lower())


def _size(req, base: int) -> int:
    m = max(1, req.multiple_of)
    return max(req.minimum, -(-base // m) * m)


def survey(arch_id: str, base: int) -> dict:
    """One row of the table for spandrel architecture ``arch_id``."""
    spandrel = import_spandrel()
    row = {"architecture": arch_id}
    t0 = time.perf_counter()
    try:
        classes = _candidates(arch_id)
        if not classes:
            raise ValueError("no model class found")
        torch.manual_seed(0)
        net = classes[0]()
        desc = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
        model = desc.model.eval()
        row["params_M"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        row["scale"] = desc.scale
        ts = _size(desc.size_requirements, base)
        x = torch.rand(1, desc.input_channels, ts, ts)
        with torch.no_grad():
            sites = [s for s in find_sites(model, x) if s.executed]
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
        row["convert"] = f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/spandrel_sites.md", help="markdown file to write")
    p.add_argument("--size", type=int, default=64, help="calibration size, px (default: 64)")
    p.add_argument("--only", nargs="*", help="architecture ids (default: all)")
    args = p.parse_args()
    spandrel = import_spandrel()
    ids = [a.id for a in spandrel.MAIN_REGISTRY.architectures("id")]
    rows = [survey(a, args.size) for a in ids if not args.only or a in args.only]
    cols = ["architecture", "params_M", "scale", "in", "se", "attn", "functional"]
    cols += ["convert", "seconds"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    table = "\n".join(lines)
    head = (
        f"spandrel {spandrel.__version__}, torch {torch.__version__}: each architecture's "
        f"default model, random weights, sites found at {args.size} px "
        "(`python scripts/spandrel_sites.py`)."
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(f"# Global sites in spandrel's architectures\n\n{head}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
