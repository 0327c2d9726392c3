"""TLC's time overhead on MPRNet at two widths: is it a tiny-model artefact?

Run: ``python benchmarks/tlc_overhead.py [--size 360 640] [--repeats 2]``. Times whole-image
inference, exact TLC and fast TLC (train_size 64) of MPRNet's tiny preset and of its
official width (n_feat 96, untrained: the cost does not depend on the weights),
interleaved, best of ``repeats``, and prints the ratios to whole-image inference. It also
times the pieces on one (1, 96, H, W) map: an elementwise pass, ``box_mean`` (window 96)
and a 3x3 convolution, which say where the overhead comes from.
"""

from __future__ import annotations

import argparse
import time

import torch

from tlc_probe import convert
from tlc_probe.models import build
from tlc_probe.tlc.box import box_mean


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[360, 640])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.rand(1, 3, *args.size)
    print("| MPRNet | whole (s) | TLC / whole | fast TLC / whole |")
    print("|---|---|---|---|")
    with torch.no_grad():
        for preset in ("tiny", "official"):
            m = build("mprnet", preset).eval()
            nets = {
                "whole": m,
                "tlc": convert(m, train_size=64),
                "fast": convert(m, train_size=64, fast_imp=True),
            }
            for net in nets.values():  # warm-up at the timed size
                net(x)
            times: dict[str, list[float]] = {k: [] for k in nets}
            for _ in range(args.repeats):
                for k, net in nets.items():
                    times[k].append(_best(lambda net=net: net(x), 1))
            best = {k: min(v) for k, v in times.items()}
            print(
                f"| {preset} | {best['whole']:.2f} | {best['tlc'] / best['whole']:.2f} | "
                f"{best['fast'] / best['whole']:.2f} |"
            )
        fmap = torch.randn(1, 96, *args.size)
        conv = torch.nn.Conv2d(96, 96, 3, padding=1, bias=False)
        print(f"\n(1, 96, {args.size[0]}, {args.size[1]}) map, best of 5:")
        print(f"  elementwise pass (x - 1): {1000 * _best(lambda: fmap - 1, 5):.1f} ms")
        box = _best(lambda: box_mean(fmap, (96, 96)), 5)
        print(f"  box_mean, window 96:      {1000 * box:.1f} ms")
        print(f"  3x3 convolution:          {1000 * _best(lambda: conv(fmap), 5):.1f} ms")


if __name__ == "__main__":
    main()
