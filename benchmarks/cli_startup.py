"""Start-up time of the command line and of the package, as a user has them.

Run: ``python benchmarks/cli_startup.py [--repeats 7]``. Each command runs in a fresh
process, ``PYTHONDONTWRITEBYTECODE`` removed from its environment (byte code cached as on
a user's machine; one untimed run first writes it), the commands interleaved within each
repeat; the median wall time of each is printed, and ``from tlc_probe import convert``
minus ``import torch`` (the package's own cost: ``import tlc_probe`` alone imports no
torch; the goals are <= 0.5 s for it and for ``--help``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def commands() -> dict[str, list[str]]:
    exe = shutil.which("tlc-probe") or os.path.join(os.path.dirname(sys.executable), "tlc-probe")
    return {
        "tlc-probe --help": [exe, "--help"],
        "tlc-probe collect --help": [exe, "collect", "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "import tlc_probe": [sys.executable, "-c", "import tlc_probe"],
        "from tlc_probe import convert": [sys.executable, "-c", "from tlc_probe import convert"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmds = commands()
    for cmd in cmds.values():  # write the byte code once
        subprocess.run(cmd, env=env, capture_output=True, check=True)
    took: dict[str, list[float]] = {k: [] for k in cmds}
    names = list(cmds)
    for rep in range(args.repeats):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            t = time.perf_counter()
            subprocess.run(cmds[name], env=env, capture_output=True, check=True)
            took[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in took.items()}
    print(f"median of {args.repeats} fresh processes (s)")
    for name, s in med.items():
        print(f"  {name:32s} {s:.3f}")
    own = med["from tlc_probe import convert"] - med["import torch"]
    print(f"  {'tlc_probe.convert - import torch':32s} {own:+.3f}")


if __name__ == "__main__":
    main()
