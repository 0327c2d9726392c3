"""Overhead of the TrainingRecorder on a training step: without it, with every=100 and with
every=1, measured in one run, schemes interleaved in an order rotated from repeat to repeat.

A tiny zoo model trains on fixed random 64-px batches (AdamW, L1 over every stage output,
as ``tlc-probe train``). The recorder runs with train rows only (its hooks and the rows of
the training batch) and, at every=100, also with the three test photos as probe images,
so that a recorded step runs the whole and TLC regimes on them too. Prints milliseconds
per step (mean over the measured steps, median over repeats) and the ratio to training
without the recorder; the goal is <= 1.02 at every=100.

    python benchmarks/recorder_overhead.py [--model nafnet] [--steps 200] [--repeats 3]
"""

import argparse
import tempfile
import time
from contextlib import nullcontext

import torch

from tlc_probe.jobs.evaluate import held_out_items
from tlc_probe.jobs.recorder import TrainingRecorder
from tlc_probe.models import build


def run(model_name: str, steps: int, every: int | None, batches, items, out) -> float:
    """Mean seconds per training step over ``steps`` steps (recorder off if ``every`` is
    None; ``items``: its probe images, none = train rows only)."""
    torch.manual_seed(0)
    model = build(model_name, "tiny").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rec = (
        TrainingRecorder(model, out, train_size=64, every=every, probe_images=items, positions=8)
        if every is not None
        else None
    )
    with rec or nullcontext():
        t0 = time.perf_counter()
        for step in range(steps):
            x, y = batches[step % len(batches)]
            loss = sum((o - y).abs().mean() for o in model.forward_all(x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if rec is not None:
                rec.step(step)
        return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="nafnet")
    ap.add_argument("--steps", type=int, default=200, help="steps per timing")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(8, 3, 64, 64, generator=g), torch.rand(8, 3, 64, 64, generator=g))]
    batches *= 4
    items = held_out_items("deblur")
    # (every, probe images): the hooks and train rows alone, and with the image regimes
    schemes = {
        "without": (None, []),
        "every=100, train rows": (100, []),
        "every=100, + whole/tlc on 3 photos": (100, items),
        "every=1, train rows": (1, []),
    }
    times: dict[str, list[float]] = {k: [] for k in schemes}
    with tempfile.TemporaryDirectory() as tmp:
        run(args.model, 5, None, batches, [], None)  # warm-up
        names = list(schemes)
        for rep in range(args.repeats):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for k, name in enumerate(order):
                every, probe = schemes[name]
                out = f"{tmp}/{rep}-{k}"
                times[name].append(run(args.model, args.steps, every, batches, probe, out))
                print(f"repeat {rep} {name}: {times[name][-1] * 1e3:.1f} ms/step", flush=True)
    base = sorted(times["without"])[len(times["without"]) // 2]
    print(f"\n{args.model}-tiny, batch 8 x 64 px, {args.steps} steps, median of {args.repeats}")
    print("| recorder | ms / step | ratio |\n|---|---|---|")
    for name, ts in times.items():
        med = sorted(ts)[len(ts) // 2]
        print(f"| {name} | {med * 1e3:.1f} | {med / base:.3f} |")


if __name__ == "__main__":
    main()
