"""Copy the README's figures from a finished ``tlc-probe reproduce`` run into docs/.

Usage: ``make docs`` (runs the main job, then this), or
``python scripts/update_docs.py [results]`` after ``tlc-probe reproduce --out results
--overwrite``.
Copies the Fig. A3 figure of the most shifted HINet instance-norm site and MPRNet SE site,
the depth profile of MPRNet, the decomposition bars of HINet (deblurring) and NAFNet, the
Fig. A3 figure of Restormer's most shifted attention site, SPDNet's deraining panels
(Fig. A5 analogue), the seam crops and window sweep of the deblurring models, and
prints the Table A1 markdown of each deblurring model for the README.
"""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(results: Path) -> None:
    docs = ROOT / "docs"
    figs = results / "figures"
    wanted = {
        "fig_a3_hinet_in.png": next(figs.glob("hinet-tiny-deblur-a3-*.png")),
        "fig_a3_mprnet_se.png": next(figs.glob("mprnet-tiny-deblur-a3-*.png")),
        "depth_mprnet.png": figs / "mprnet-tiny-deblur-depth.png",
        "decomposition_hinet.png": figs / "hinet-tiny-deblur-decomposition.png",
        "decomposition_nafnet.png": figs / "nafnet-tiny-deblur-decomposition.png",
        "qualitative_ffanet.png": figs / "qualitative-ffanet-tiny-dehaze.png",
        "qualitative_spdnet.png": figs / "qualitative-spdnet-tiny-derain.png",
        "fig_a3_restormer_attn.png": next(figs.glob("restormer-tiny-deblur-a3-*.png")),
        "seams_hinet.png": results / "bench" / "hinet-tiny-deblur" / "seams.png",
        "sweep_nafnet.png": results / "bench" / "nafnet-tiny-deblur" / "sweep.png",
    }
    for name, src in wanted.items():
        shutil.copyfile(src, docs / name)
        print(f"docs/{name} <- {src}")
    for md in sorted((results / "bench").glob("*/bench.md")):
        print(f"\n{md.parent.name}\n\n{md.read_text()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results")
