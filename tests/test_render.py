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


def test_test_sets_side_by_side_with_the_content_floor():
    from tlc_probe.jobs.render import test_sets_section

    def summ(test_set: str, content: float, ratio: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "model": ["hinet-tiny", "hinet-tiny"],
                "task": ["deblur", "deblur"],
                "test_set": [test_set] * 2,
                "stat": ["std", "mean"],  # the mean is the primary statistic, not the first
                "n_sites": [4, 4],
                "frac_w1_improved": [0.25, 0.75],
                "n_w1_improved_sure": pd.array([0, 2], dtype="Int64"),
                "median_content_share": [0.9, content],
                "median_context_share": [0.05, 0.3],
                "median_aggregation_share": [0.05, 0.4],
                "median_content_to_floor": [9.0, ratio],
            }
        )

    photos = {("hinet-tiny", "deblur"): _bench("hinet-tiny", [("tlc", -0.3, -1.3, 0.7, 3)])}
    synthetic = {
        ("hinet-tiny", "deblur"): _bench(
            "hinet-tiny", [("tlc", 0.02, 0.01, 0.03, 12), ("tiles-64", 0.05, 0.0, 0.1, 12)]
        )
    }
    lines = test_sets_section(
        {
            "photos": (summ("photos", 0.6, math.nan), photos),
            "synthetic": (summ("synthetic", 0.3, 0.7), synthetic),
        },
        {"photos": "3 photos", "synthetic": "12 scenes"},
    )
    text = "\n".join(lines).splitlines()
    rows = [line for line in text if line.startswith("| hinet-tiny")]
    assert rows == [
        "| hinet-tiny | deblur | photos | 0.60 | 0.30 | 0.40 | - | 3 of 4 (2 sure) "
        "| -0.30 [-1.30, +0.70] | - |",
        "| hinet-tiny | deblur | synthetic | 0.30 | 0.30 | 0.40 | 0.70 | 3 of 4 (2 sure) "
        "| +0.02 [+0.01, +0.03] | +0.05 [+0.00, +0.10] |",
    ]
    said = [line for line in text if line.startswith("- **")]
    assert len(said) == 1 and "on 12 synthetic images" in said[0]  # photos' open the report
    assert "- synthetic: 12 scenes" in lines
    notes = [line for line in text if line.startswith("- hinet-tiny")]
    assert notes == [
        "- hinet-tiny (deblur) on `synthetic`: content share 0.30 is 0.70 x the W1 that "
        "sampling the images alone gives: within the sampling noise of the test images."
    ]  # (photos: no floor, no note)
    far = summ("synthetic", 0.5, 3.4)
    lines = test_sets_section({"synthetic": (far, synthetic)}, {})
    assert any("3.40 x" in line and "differ from these scenes" in line for line in lines)
    low = summ("synthetic", 0.08, 3.4)  # a share within 0.1 needs no explanation
    lines = test_sets_section({"synthetic": (low, synthetic)}, {})
    assert not any("x the W1" in line for line in "\n".join(lines).splitlines())
