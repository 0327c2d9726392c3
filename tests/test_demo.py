"""The converter demo (untrained ToyNet; notebook 00) end to end, quick settings."""

import json

import pytest

from tlc_probe.demo import run_demo


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    run_demo(out, quick=True)
    return out


def test_writes_report_figure_and_summary(quick_run):
    for name in ("REPORT.md", "summary.json", "site_means.png", "site_means.pdf"):
        assert (quick_run / name).stat().st_size > 0, name
    report = (quick_run / "REPORT.md").read_text()
    assert "W1(whole~train)" in report and "site_means.png" in report


def test_summary_numbers(quick_run):
    s = json.loads((quick_run / "summary.json").read_text())
    assert s["max_abs_diff_tlc_vs_global_at_train_size"] == 0.0
    assert s["max_abs_diff_tlc_vs_global_whole_photo"] > 1e-4
    assert set(s["median_time_s"]) == {"whole", "tlc", "tlc-fast", "tiles-16", "tiles-32"}
    assert {x["name"]: x["kernel_size"] for x in s["sites"]}["ca2.avg_pool"] == [48, 48]
    # Pool means over 16 crops x 16 channels; one per channel on the whole photo; 16 x 16
    # positions per channel with TLC.
    assert s["n_values"]["ca1.avg_pool"] == {"train": 256, "whole": 16, "tlc": 16 * 256}
    assert all(d["whole"] >= 0 and d["tlc"] >= 0 for d in s["w1"].values())
