"""Overhead of the Probe's hooks on each tiny zoo model at 512 x 512 (CPU).

Run: ``python benchmarks/probe_overhead.py [--repeats 9] [--size 512]``. For each model
three variants are timed interleaved in one run (median of ``repeats``): the plain
forward, the forward inside ``Probe`` (hooks gather on the device), and that plus
``take()`` (move to the host, build the tidy rows). Ratios to the plain forward are
printed; the goal is <= 1.05 for the hooks. Shipped checkpoints are used when present,
otherwise untrained weights (the cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import time

import torch

from tlc_probe.models import build
from tlc_probe.probe import Probe
from tlc_probe.store import build_from_checkpoint, checkpoint_dir


def _model(name: str) -> torch.nn.Module:
    for ck in sorted(checkpoint_dir().glob(f"{name}-tiny-*.pt")):
        return build_from_checkpoint(ck)[0]
    return build(name, "tiny").eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    print("| model | sites | forward ms | + probe hooks | + take() | rows |")
    print("|---|---|---|---|---|---|")
    for name in ("hinet", "mprnet", "nafnet", "ffanet"):
        model = _model(name)
        probe = Probe(model)
        times: dict[str, list[float]] = {"plain": [], "hooks": [], "take": []}
        rows = 0
        with torch.no_grad():
            model(x)  # warm-up
            for _ in range(args.repeats):
                t = time.perf_counter()
                model(x)
                times["plain"].append(time.perf_counter() - t)
                t = time.perf_counter()
                with probe:
                    model(x)
                times["hooks"].append(time.perf_counter() - t)
                probe.clear()
                t = time.perf_counter()
                with probe:
                    model(x)
                rows = len(probe.take(["x"]))
                times["take"].append(time.perf_counter() - t)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        print(
            f"| {name}-tiny | {len(probe.sites)} | {1000 * med['plain']:.0f} | "
            f"{med['hooks'] / med['plain']:.3f}x | {med['take'] / med['plain']:.3f}x | {rows} |"
        )


if __name__ == "__main__":
    main()
