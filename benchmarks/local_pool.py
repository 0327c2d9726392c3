"""Local pooling vs a global pool and a 3x3 convolution on a (1, 64, 720, 1280) map.

Run: ``python benchmarks/local_pool.py [--repeats 7] [--channels 64]``. Everything is
timed in one run, interleaved, and reported as ratios (this machine is noisy); the
precision of the float32 exact pool against a float64 scipy reference is printed too.
Windows: 384 x 384 is the window of a full-resolution site of a 256-trained model with
the default base size 1.5 x 256; 96 x 96 that of a site at 1/4 resolution.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d
from torch import nn

from tlc_probe import LocalAvgPool2d, LocalInstanceNorm2d
from tlc_probe.tlc.box import fast_error_bound


def scipy_reference(x: torch.Tensor, k: int) -> np.ndarray:
    """float64 valid window means of channel 0 by scipy's running filter."""
    a = x[0, 0].double().numpy()
    a = uniform_filter1d(uniform_filter1d(a, k, axis=1, mode="constant"), k, axis=0)
    h, w = a.shape
    return a[k // 2 : k // 2 + h - k + 1, k // 2 : k // 2 + w - k + 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--channels", type=int, default=64)
    args = ap.parse_args()
    torch.manual_seed(0)
    c = args.channels
    x = torch.randn(1, c, 720, 1280) + 3.0
    conv = nn.Conv2d(c, c, 3, padding=1)
    ops = {
        "conv3x3": conv,
        "global_pool": nn.AdaptiveAvgPool2d(1),
        "local_384": LocalAvgPool2d(384),
        "local_384_fast": LocalAvgPool2d(384, fast_imp=True),
        "local_96": LocalAvgPool2d(96),
        "local_96_fast": LocalAvgPool2d(96, fast_imp=True),
        "global_in": nn.InstanceNorm2d(c, affine=True),
        "local_in_384": LocalInstanceNorm2d(c, 384, affine=True),
        "local_in_384_fast": LocalInstanceNorm2d(c, 384, affine=True, fast_imp=True),
    }
    times: dict[str, list[float]] = {k: [] for k in ops}
    with torch.no_grad():
        for op in ops.values():
            op(x)
        for _ in range(args.repeats):
            for name, op in ops.items():
                t0 = time.perf_counter()
                op(x)
                times[name].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(
            f"threads {torch.get_num_threads()}, input {tuple(x.shape)}, median of {args.repeats}"
        )
        print(f"{'op':20s} {'ms':>9s} {'/conv3x3':>9s} {'/global_pool':>13s}")
        for name, t in med.items():
            ratio = t / med["global_pool"]
            print(f"{name:20s} {t * 1e3:9.1f} {t / med['conv3x3']:9.3f} {ratio:13.1f}")
        print(
            f"exact/fast 384: {med['local_384'] / med['local_384_fast']:.2f}x, "
            f"96: {med['local_96'] / med['local_96_fast']:.2f}x"
        )
        for k in (384, 96):
            ref = scipy_reference(x, k)
            top = (k - 1) // 2
            exact = ops[f"local_{k}"](x)[0, 0, top : top + ref.shape[0], top : top + ref.shape[1]]
            fast = ops[f"local_{k}_fast"](x)[
                0, 0, top : top + ref.shape[0], top : top + ref.shape[1]
            ]
            scale = float(np.abs(x[0, 0].numpy()).max())
            rng = float(x[0, 0].max() - x[0, 0].min())
            r = ops[f"local_{k}_fast"].strides((720, 1280))
            print(
                f"window {k}: exact float32 max |err| / max|x| = "
                f"{np.abs(exact.double().numpy() - ref).max() / scale:.1e}; fast (r={r}) max "
                f"|err| / range = {np.abs(fast.double().numpy() - ref).max() / rng:.1e} "
                f"(bound {fast_error_bound((k, k), r):.3f})"
            )


if __name__ == "__main__":
    main()
