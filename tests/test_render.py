"""REPORT.md's generated parts: verdict sentences from the numbers, Table A1 with intervals."""

from __future__ import annotations

import math

import pandas as pd

from tlc_probe.jobs.bench import CSV_COLUMNS
from tlc_probe.jobs.render import table_a1, verdicts


def _bench(model: str, rows: list[tuple]) -> pd.DataFrame:
    base = dict.fromkeys(CSV_COLUMNS, math.nan)
    out = []
    for scheme, dpsnr, lo, hi, n in rows:
        tlc = "exact" if scheme == "tlc" else "no"
        out.append(
            base
            | {"model": model, "image_size": "test", "scheme": scheme, "overlap": 0, "tlc": tlc}
            | {"psnr": 24.0, "dpsnr": dpsnr, "dpsnr_lo": lo, "dpsnr_hi": hi, "n_images": n}
        )
    return pd.DataFrame(out, columns=list(CSV_COLUMNS))


def test_verdicts_are_sentences_made_of_the_numbers():
    summ = pd.DataFrame(
        {
            "model": ["mprnet-tiny", "hinet-tiny", "hinet-tiny", "hinet-tiny"],
            "task": ["deblur", "deblur", "deblur", "derain"],
            "stat": ["mean", "mean", "std", "mean"],
            "n_sites": [37, 4, 4, 4],
            "frac_w1_improved": [34 / 37, 0.25, 0.75, 0.75],
            "n_w1_improved_sure": pd.array([24, 1, 0, pd.NA], dtype="Int64"),
            "n_relied": pd.array([5, pd.NA, pd.NA, 2], dtype="Int64"),
        }
    )
    tables = {
        ("mprnet-tiny", "deblur"): _bench(
            "mprnet-tiny",
            [
                ("whole", math.nan, math.nan, math.nan, 3),
                ("tlc", 0.08, -0.02, 0.17, 3),
                ("tiles-8", 0.25, 0.1, 0.4, 3),
            ],
        )
    }
    lines = verdicts(summ, tables, "photos")
    assert lines == [
        "- **mprnet-tiny** (deblur): tlc +0.08 [-0.02, +0.17] dB (0 inside) vs whole on 3 "
        "photos; tiles-8 +0.25 [+0.10, +0.40] dB; TLC brings 34 of 37 sites closer to "
        "training (24 with the interval below 0); the output relies on 5.",
        "- **hinet-tiny** (deblur): TLC brings 1 of 4 sites closer to training (1 with the "
        "interval below 0).",
        "- **hinet-tiny** (derain): TLC brings 3 of 4 sites closer to training (no interval: "
        "too few images); the output relies on 2.",
    ]


def test_table_a1_shows_the_paired_difference_with_its_interval():
    md = table_a1(
        _bench("m", [("whole", math.nan, math.nan, math.nan, 3), ("tlc", 0.081, -0.024, 0.17, 3)])
    )
    head, rule, whole, tlc = md.split("\n")
    assert head.count("|") - 1 == 8 and "ΔPSNR vs whole [95 %]" in head
    assert "| +0.08 [-0.02, +0.17] |" in tlc and "| - |" in whole
