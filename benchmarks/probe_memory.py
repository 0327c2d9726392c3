"""Peak memory of a collection does not grow with the number of images.

Run: ``python benchmarks/probe_memory.py [--counts 10 100] [--checkpoint PATH]``. Each
count runs ``collect`` (regimes whole and tlc, the bundled test photos repeated with new
degradations until there are that many images) in a fresh subprocess and reports its
peak resident set size (``ru_maxrss``) and time. Streaming writes one part file per
image, so the peak should be flat.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from tlc_probe.store import checkpoint_dir

CHILD = """
import json, resource, sys, time
from tlc_probe.data import SyntheticPairs
from tlc_probe.jobs.collect import CollectConfig, collect
from tlc_probe.store import build_from_checkpoint
n, ckpt, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
model, meta = build_from_checkpoint(ckpt)
data = SyntheticPairs(meta["task"], split="test", n_per_photo=-(-n // 3), seed=1)
data.items = data.items[:n]
t = time.perf_counter()
r = collect(model, out, model_name=meta["name"], task=meta["task"], train_size=meta["train_size"],
            test_data=data, config=CollectConfig(regimes=("whole", "tlc")), progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"images": n, "rows": sum(r.rows.values()), "seconds": time.perf_counter() - t,
                  "peak_rss_mb": peak}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--checkpoint", default=str(checkpoint_dir() / "nafnet-tiny-deblur.pt"))
    args = ap.parse_args()
    print("| images | rows | seconds | peak RSS (MB) |")
    print("|---|---|---|---|")
    for n in args.counts:
        with tempfile.TemporaryDirectory() as tmp:
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), args.checkpoint, tmp + "/stats"],
                check=True,
                capture_output=True,
                text=True,
            )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {n} | {r['rows']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
