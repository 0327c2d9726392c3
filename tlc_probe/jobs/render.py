"""Markdown: tables, the Table A1 layout, and ``REPORT.md`` of the main job."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..metrics.decomposition import RELIED_DB, relied_on
from ..metrics.intervals import paired_difference
from ..metrics.shift import stat_mask
from ..sites import PRIMARY_STAT

#: The summary columns REPORT.md shows (at most 8; the rest stays in summary.csv).
SUMMARY_SHOWN = (
    "model",
    "task",
    "stat",
    "n_sites",
    "frac_w1_improved",
    "n_w1_improved_sure",
    "median_w1_ratio",
    "n_relied",
)


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    cols = list(table.columns)
    rows = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join(rows)


def table_a1(df: pd.DataFrame) -> str:
    """The benchmark as a markdown table laid out like the paper's Table A1 (Input,
    #Overlap, TLC, PSNR, Time) plus the paired PSNR difference to whole-image inference
    with its 95 % interval over images, SSIM and the time ratio; one block of rows per
    image size (memory, tile ratio and seam index stay in ``bench.csv``)."""
    head = "| Input | #Overlap | TLC | PSNR (dB) | ΔPSNR vs whole [95 %] | SSIM | Time (s) "
    head += "| Ratio |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples(index=False):
        inp = "patches" if r.scheme.startswith("tiles") else "whole image"
        ov = str(r.overlap) if r.scheme.startswith("tiles") else "-"
        tlc = {
            "no": "",
            "exact": "yes",
            "fast": "yes (fast)",
            "tuned": "yes (tuned windows)",
            "grid": "yes (fast, grid head)",
            "valid": "yes (valid head)",
            "fused": "yes (fused head)",
        }[r.tlc]
        gain = [getattr(r, c, math.nan) for c in ("dpsnr", "dpsnr_lo", "dpsnr_hi")]
        lines.append(
            f"| {inp} ({r.image_size}) | {ov} | {tlc} | {_f(r.psnr, 2)} | {_interval(*gain)} | "
            f"{_f(r.ssim, 4)} | {_f(r.time_s, 3)} | {_f(r.time_ratio, 2)} |"
        )
    return "\n".join(lines)


def _interval(value: float, lo: float, hi: float, nd: int = 2) -> str:
    """``+0.08 [-0.02, +0.17]``; ``-`` without a value, the value alone without bounds."""
    if value is None or not math.isfinite(value):
        return "-"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:+.{nd}f}"
    return f"{value:+.{nd}f} [{lo:+.{nd}f}, {hi:+.{nd}f}]"


def verdicts(
    summ: pd.DataFrame,
    tables: dict[tuple[str, str], pd.DataFrame],
    images: str,
    tuned: dict[tuple[str, str], dict[str, float]] | None = None,
) -> list[str]:
    """One generated sentence per (model, task), from the numbers: each scheme's PSNR
    difference to whole-image inference with its 95 % interval over the test images (the
    ``bench`` tables, keyed by (model name, task)), how many sites TLC brings closer to
    training and at how many the interval of that paired W1 difference lies below 0, and
    how many sites the output relies on (``summ``: a
    :func:`~tlc_probe.metrics.shift.summary`, the rows of each model's primary
    statistic). ``images`` names the test images (e.g. "photos"). ``tuned``: per (model,
    task) the paired PSNR difference of the tuned windows to the uniform 1.5 on the test
    images (:func:`~tlc_probe.metrics.intervals.paired_difference`'s dict)."""
    keys = [(str(m), str(t)) for m, t in zip(summ["model"], summ["task"], strict=True)]
    primary = _primary(summ)
    lines = []
    for model, task in dict.fromkeys([*keys, *tables]):
        row = primary[
            (primary["model"].astype(str) == model) & (primary["task"].astype(str) == task)
        ]
        parts = []
        table = tables.get((model, task))
        if table is not None:
            test = table[(table["image_size"] == "test") & (table["scheme"] != "whole")]
            for r in test.itertuples(index=False):
                dp = _interval(r.dpsnr, r.dpsnr_lo, r.dpsnr_hi)
                if dp == "-":
                    continue
                zero = math.isfinite(r.dpsnr_lo) and r.dpsnr_lo <= 0 <= r.dpsnr_hi
                parts.append(f"{r.scheme} {dp} dB" + (" (0 inside)" if zero else ""))
            if parts:
                n = int(test["n_images"].max())
                parts[0] = parts[0] + f" vs whole on {n} {images}"
        if tuned and (model, task) in tuned:
            d = tuned[(model, task)]
            kept = d.get("kept")
            said = f"tuned windows {_interval(d['diff'], d['lo'], d['hi'])} dB over the uniform 1.5"
            if kept == "uniform":
                said += " (validation rejected them: plan.json holds the uniform 1.5)"
            parts.append(said)
        if len(row) and int(row.iloc[0]["n_sites"]) > 0:
            r = row.iloc[0]
            n_sites, frac = int(r["n_sites"]), float(r["frac_w1_improved"])
            closer = f"TLC brings {round(frac * n_sites)} of {n_sites} sites closer to training"
            sure = r.get("n_w1_improved_sure", pd.NA)
            if not pd.isna(sure):
                closer += f" ({int(sure)} with the interval below 0)"
            else:
                closer += " (no interval: too few images)"
            parts.append(closer)
            relied = r.get("n_relied", pd.NA)
            if relied is not None and not pd.isna(relied):
                parts.append(f"the output relies on {int(relied)}")
        if parts:
            lines.append(f"- **{model}** ({task}): " + "; ".join(parts) + ".")
    return lines


def _primary(summ: pd.DataFrame) -> pd.DataFrame:
    """Each (model, task)'s row of its primary statistic (:data:`~tlc_probe.sites.PRIMARY_STAT`;
    else its first)."""
    rows = []
    for _, g in summ.groupby(["model", "task"], sort=True):
        primary = g[g["stat"].astype(str).isin(set(PRIMARY_STAT.values()))]
        rows.append((primary if len(primary) else g).head(1))
    return pd.concat(rows, ignore_index=True) if rows else summ.head(0)


def _scheme_dpsnr(table: pd.DataFrame | None, scheme: str) -> str:
    """The paired PSNR difference to whole on the test images, with its interval, of
    ``scheme``, or with ``"tiles"`` of the tiles with the largest overlap ("-" when
    absent)."""
    if table is None:
        return "-"
    test = table[table["image_size"] == "test"]
    if scheme == "tiles":
        rows = test[test["scheme"].str.startswith("tiles-")].sort_values("overlap")
    else:
        rows = test[test["scheme"] == scheme]
    if rows.empty:
        return "-"
    r = rows.iloc[-1]
    return _interval(r["dpsnr"], r["dpsnr_lo"], r["dpsnr_hi"])


#: Content W1 over its sampling floor up to which a content share is called noise, and
#: from which it is called a real difference (between: neither, said so).
NOISE_RATIO, REAL_RATIO = 1.5, 2.0


def _content_note(test_set: str, r) -> str:
    """Why a content share above 0.1 is left on a test set whose content matches
    training by construction: the content W1 against its sampling floor, in words
    ("" where there is no floor or the share is at most 0.1)."""
    share = getattr(r, "median_content_share", None)
    ratio = getattr(r, "median_content_to_floor", None)
    if share is None or ratio is None or pd.isna(share) or pd.isna(ratio) or share <= 0.1:
        return ""
    if ratio <= NOISE_RATIO:
        why = "within the sampling noise of the test images"
    elif ratio >= REAL_RATIO:
        why = "well above sampling noise: the training crops differ from these scenes"
    else:
        why = "above the sampling floor, but not clearly beyond its uncertainty"
    return (
        f"- {r.model} ({r.task}) on `{test_set}`: content share {share:.2f} is "
        f"{ratio:.2f} x the W1 that sampling the images alone gives: {why}."
    )


def test_sets_section(
    sets: dict[str, tuple[pd.DataFrame, dict]], described: dict[str, str]
) -> list[str]:
    """REPORT.md lines putting test sets side by side: per model (its primary statistic)
    and test set the median content / context / aggregation shares, how many sites TLC
    brings closer to training, and TLC's and the tiles' (the largest overlap) paired PSNR
    difference to whole with 95 % intervals; then the verdicts on every test set after
    the first (whose verdicts open the report). ``sets``: test set -> (summary, bench
    tables keyed (model, task)); ``described``: test set -> its description."""
    rows = []
    for name, (summ, tables) in sets.items():
        for r in _primary(summ).itertuples(index=False):
            key = (str(r.model), str(r.task))
            sure = getattr(r, "n_w1_improved_sure", pd.NA)
            frac, n_sites = float(r.frac_w1_improved), int(r.n_sites)
            closer = f"{round(frac * n_sites)} of {n_sites}" if n_sites and frac == frac else "-"
            if closer != "-" and not pd.isna(sure):
                closer += f" ({int(sure)} sure)"
            rows.append(
                {
                    "model": r.model,
                    "task": r.task,
                    "test set": name,
                    "content": _f(getattr(r, "median_content_share", None), 2),
                    "context": _f(getattr(r, "median_context_share", None), 2),
                    "aggregation": _f(getattr(r, "median_aggregation_share", None), 2),
                    "content / floor": _f(getattr(r, "median_content_to_floor", None), 2),
                    "TLC closer": closer,
                    "TLC dPSNR (dB)": _scheme_dpsnr(tables.get(key), "tlc"),
                    "tiles dPSNR (dB)": _scheme_dpsnr(tables.get(key), "tiles"),
                }
            )
    if not rows:
        return []
    table = pd.DataFrame(rows).sort_values(["model", "task"], kind="stable")
    notes = [
        note
        for name, (summ, _) in sets.items()
        for r in _primary(summ).itertuples(index=False)
        if (note := _content_note(name, r))
    ]
    lines = [
        "## Two test sets side by side: the photos and synthetic scenes",
        "",
        "On the photos the test pictures are not the training pictures, so *content* adds to",
        "every shift. The `synthetic` test set removes it by construction: dead-leaves scenes",
        "(the synthetic part of the training distribution) at the paper's image-to-crop",
        "ratio, with the train regime's crops drawn from the same generator; what content",
        "share is left is the sampling noise of a finite number of images. *content /",
        "floor*: the content link's W1 over the W1 that sampling the images alone gives",
        "(split-half estimate; about 1 or below: the content share is noise). Shares and",
        "ratios: medians over sites of the primary statistic; TLC closer: sites where",
        "W1(tlc~train) < W1(whole~train) (sure: the paired interval below 0); dPSNR: paired",
        "difference to whole-image inference with its 95 % interval over the images (tiles:",
        "the larger overlap). Per site: `shift/` and `synthetic/shift/`.",
        "",
        *[f"- {k}: {v}" for k, v in described.items()],
        "",
        markdown(table),
        "",
        *([*notes, ""] if notes else []),
    ]
    for name, (summ, tables) in list(sets.items())[1:]:
        said = verdicts(summ, tables, f"{name} images")
        if said:
            lines += [f"Verdicts on `{name}`:", "", *said, ""]
    return lines


def decomposition_section(parts: pd.DataFrame, pngs: list[Path], img) -> list[str]:
    """REPORT.md lines: what the decomposition means, the median shares per model and
    statistic, the figures, and the sites with the largest shift."""
    lines = [
        "## Where the shift comes from: content, context, aggregation",
        "",
        "At a site, whole-image statistics differ from the training patches' for three",
        "reasons: the test pictures are not the training pictures (*content*: tiles of the",
        "test images vs training crops), the features themselves change because in a patch",
        "they see zero padding where the whole image has real context (*context*: the whole",
        "image's features averaged over windows of the training extent, placed where the",
        "tiles lie, vs the tiles), and the mean covers more of the map (*aggregation*: the",
        "whole-image mean vs those windows). TLC changes only the extent of the mean, so it",
        "can remove only the aggregation share; shares are fractions of the sum of the three",
        "W1 distances (which bounds W1(whole, train)).",
        "",
    ]
    keys = ["model", "task", "stat"]
    agg = parts.groupby(keys, sort=True).agg(
        n_sites=("site", "size"),
        content=("content_share", "median"),
        context=("context_share", "median"),
        aggregation=("aggregation_share", "median"),
    )
    if "relied" in parts.columns:
        agg["n_relied"] = parts.groupby(keys, sort=True)["relied"].sum()
    lines += ["Median shares over sites:", "", markdown(agg.reset_index().round(3)), ""]
    lines += [img(p, p.stem) for p in pngs] + [""]
    cols = [
        c
        for c in (
            "model",
            "task",
            "site",
            "kind",
            "depth",
            "whole_w1",
            "tlc_w1",
            "content_share",
            "context_share",
            "aggregation_share",
            "frozen_delta_psnr",
        )
        if c in parts.columns
    ]
    top = parts[stat_mask(parts, "mean")].sort_values("whole_w1", ascending=False)
    lines += [
        "Sites with the largest W1(whole, train) of the mean (all: `shift/decomposition.csv`):",
        "",
        markdown(top[cols].head(10).round(4)),
        "",
    ]
    return lines


def reliance_section(reliance: pd.DataFrame) -> list[str]:
    """REPORT.md lines: per model, the PSNR change with every site frozen, and the site
    whose freezing changes it most."""
    rows = []
    for (model, task), g in reliance.groupby(["model", "task"], sort=True):
        every = g[g["site"] == "all"]
        one = g[g["site"] != "all"]
        measured = one.dropna(subset=["delta_psnr"])
        top = measured.loc[measured["delta_psnr"].abs().idxmax()] if len(measured) else None
        rows.append(
            {
                "model": model,
                "task": task,
                "sites": len(one),
                f"relied (abs dPSNR >= {RELIED_DB} dB)": int(relied_on(one["delta_psnr"]).sum()),
                "all frozen dPSNR (dB)": _f(float(every["delta_psnr"].iloc[0]), 3)
                if len(every)
                else "-",
                "most relied site": "-" if top is None else f"{top['site']} ({top['kind']})",
                "its dPSNR (dB)": "-" if top is None else _f(float(top["delta_psnr"]), 3),
                "images": int(g["n_images"].iloc[0]),
            }
        )
    return [
        "## Reliance: does the output depend on the statistic?",
        "",
        "Each site's statistic frozen to its per-channel mean over the test images (one site",
        "at a time, and all at once); the PSNR change on the test images. A shift at a site",
        "the output does not rely on cannot matter for the output, whatever its size.",
        "",
        markdown(pd.DataFrame(rows)),
        "",
        "Per site: `reliance/reliance.csv`.",
        "",
    ]


def tune_section(tunes: dict[str, dict[str, Any]], out: Path, img) -> list[str]:
    """REPORT.md lines: per tuned checkpoint the windows the shift chose (how many sites
    at each multiple of the training extent), W1 / std(train) with the uniform 1.5 and with
    the chosen windows, the validation on training images and what was kept; the figures."""
    rows = []
    for key, res in tunes.items():
        sc, v = res["scores"], res["plan"].validation
        best = sc.loc[sc["chosen"], "candidate"]
        counts = best.value_counts()
        choice = ", ".join(f"{c.lstrip('x')} x {n}" for c, n in counts.items())
        before = sc.loc[sc["candidate"] == "x1.5", "w1_norm"].mean()
        after = sc.loc[sc["candidate"] == "tuned", "w1_norm"].mean()
        rows.append(
            {
                "checkpoint": key,
                "sites": int(best.size),
                "chosen (ratio x sites)": choice,
                "W1n 1.5 -> chosen": f"{before:.3f} -> {after:.3f}",
                "validation dPSNR (dB)": _interval(v["dpsnr"], v["dpsnr_lo"], v["dpsnr_hi"], 3),
                "images": len(v["images"]),
                "kept": v["kept"],
            }
        )
    lines = [
        "## Windows chosen per site (`tune`)",
        "",
        "Each site's window chosen among 1, 1.25, 1.5, 2, 3, 4 x its training extent and",
        "global, by the least W1 / std(train) of its statistic against training crops of the",
        "tuning images (training images, not the test photos); checked by PSNR there against",
        "the uniform 1.5 and kept only when it wins (`tune/<checkpoint>/plan.json`). Table A1",
        "runs the chosen windows as `tlc-tuned`, before that check.",
        "",
        markdown(pd.DataFrame(rows)),
        "",
    ]
    for key in tunes:
        png = out / "tune" / key / "tune.png"
        if png.exists():
            lines.append(img(png, f"tune {key}"))
    return [*lines, ""]


def _tables_by_model(benches: dict[str, dict[str, Any]]) -> dict[tuple[str, str], pd.DataFrame]:
    """The bench tables of ``benches`` (bench_outputs' dicts, by checkpoint) keyed by
    (model name, task)."""
    return {
        (str(b["table"]["model"].iloc[0]), str(b["subject"].task)): b["table"]
        for b in benches.values()
    }


def _f(v: float, nd: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def _rel(path: Path, base: Path) -> str:
    return str(path.relative_to(base)).replace("\\", "/")


def report_md(
    out: Path,
    result: dict[str, Any],
    summ: pd.DataFrame,
    pooled: pd.DataFrame,
    figs: list[Path],
    benches: dict[str, dict[str, Any]],
    parts: pd.DataFrame | None = None,
    reliance: pd.DataFrame | None = None,
    tunes: dict[str, dict[str, Any]] | None = None,
    synthetic: dict[str, Any] | None = None,
) -> str:
    """``REPORT.md`` of the main job written to ``out``: the verdicts (:func:`verdicts`),
    the summary table, the figures
    (paths relative to ``out``), the decomposition of the shift (``parts``, a
    :func:`~tlc_probe.metrics.decomposition` table) and the reliance table when given,
    the largest shifts of the pooled shift table, Table A1 of each benchmarked checkpoint
    and the run settings and timings; with ``synthetic`` (the main job's pass on the
    generated test set) both test sets side by side (:func:`test_sets_section`)."""
    pngs = [p for p in figs if p.suffix == ".png"]

    def img(p: Path, alt: str) -> str:
        return f"![{alt}]({_rel(p, out)})"

    if result.get("user_model"):
        names = ", ".join(f"`{m}`" for m in result.get("models", {}).values())
        subject = f"for {names} on {result.get('data', 'its test images')}"
    elif result.get("test_set", "photos") == "photos":
        subject = (
            "for the checkpoints shipped in the package (`tlc_probe/checkpoints`) on the "
            "bundled test photos"
        )
    else:
        subject = f"for the shipped checkpoints on {result.get('data')}"
    lines = [
        "# tlc-probe report",
        "",
        "Global-statistics drift between patch training and whole-image inference, and what",
        f"test-time local conversion (TLC) does to it, {subject}"
        + (" (**--quick**: one image, reduced settings)." if result["quick"] else "."),
        "",
    ]
    tables = _tables_by_model(benches)
    tuned = {}
    for b in benches.values():
        each = b.get("per_image")
        if each is not None and {"tlc", "tlc-tuned"} <= set(each["scheme"]):
            wide = each.pivot_table(index="image", columns="scheme", values="psnr")
            key = (str(b["table"]["model"].iloc[0]), str(b["subject"].task))
            tuned[key] = paired_difference(wide["tlc-tuned"], wide["tlc"])
            stem = next((k for k, v in benches.items() if v is b), None)
            if tunes and stem in tunes:
                tuned[key]["kept"] = tunes[stem]["kept"]
    photos = result.get("test_set", "photos") == "photos" and not result.get("user_model")
    said = verdicts(summ, tables, "photos" if photos else "images", tuned)
    if said:
        lines += [
            "## Verdicts",
            "",
            "Generated from the numbers below. PSNR differences are paired with whole-image",
            "inference image by image, with 95 % intervals resampling images; an interval",
            "holding 0 is no finding. Sites closer to training: W1(tlc~train) <",
            "W1(whole~train), and how many with the interval of that paired difference",
            "below 0.",
            "",
            *said,
            "",
        ]
    if synthetic is not None:
        syn_tables = _tables_by_model(synthetic["benches"])
        sets = {"photos": (summ, tables), "synthetic": (synthetic["summary"], syn_tables)}
        described = {"photos": str(result.get("data")), "synthetic": synthetic["data"]}
        lines += test_sets_section(sets, described)
    noop = [k for k, v in result.get("collect", {}).items() if v.get("tlc_noop")]
    if noop:
        lines += [
            f"**TLC changed nothing for {', '.join(noop)}**: at the test image size every",
            "TLC window covers its whole feature map (the images are no larger than",
            "base_size = 1.5 x train_size), so the tlc regime equals whole and red hides blue",
            "in the figures. Use larger test images to see TLC act.",
            "",
        ]
    lines += [
        "## The claim, measured: does TLC pull the statistics back to training?",
        "",
        "Per model and statistic, over the global-aggregation sites: fraction of sites where",
        "the shift from the training-patch distribution is smaller with TLC than with",
        "whole-image inference (W1), how many of them with the 95 % interval of the paired",
        "difference below 0, and the median ratio W1(tlc~train) / W1(whole~train) (< 1: TLC",
        "is closer to training). Every column: `shift/summary.csv`.",
        "",
        markdown(summ[[c for c in SUMMARY_SHOWN if c in summ.columns]].round(3)),
        "",
        "## Fig. A3: distributions at one site (green train, blue whole, red TLC, purple tiles,",
        "orange: the whole image's features over training-extent windows)",
        "",
    ]
    lines += [img(p, p.stem) for p in pngs if "-a3-" in p.name] + [""]
    if parts is not None:
        lines += decomposition_section(parts, [p for p in pngs if "-decomposition" in p.stem], img)
    if reliance is not None:
        lines += reliance_section(reliance)
    if tunes:
        lines += tune_section(tunes, out, img)
    elif benches:
        lines += [
            "## Windows chosen per site (`tune`)",
            "",
            "Not tuned: no training images to tune on apart from the test images (give",
            "train_data, or a GoPro folder with its train split).",
            "",
        ]
    lines += ["## Where the shift builds up: normalised W1 against site depth", ""]
    lines += [img(p, p.stem) for p in pngs if p.stem.endswith("-depth")] + [""]
    lines += ["## Site x comparison heatmaps", ""]
    lines += [img(p, p.stem) for p in pngs if p.stem.endswith("-heatmap")] + [""]
    top = pooled[stat_mask(pooled, "mean")].sort_values("w1_norm", ascending=False)
    cols = ["model", "site", "comparison", "w1", "w1_lo", "w1_hi", "w1_norm", "kl"]
    lines += [
        "## Largest shifts (mean statistic, all channels pooled)",
        "",
        markdown(top[cols].head(12).round(4)),
        "",
        "Full tables: `shift/shift.csv` (per channel and pooled), `shift/summary.csv`.",
        "",
        "## Table A1: whole image vs TLC vs overlapping tiles",
        "",
    ]
    for stem, b in benches.items():
        lines += [f"### {stem}", "", b["markdown"], ""]
        d = out / "bench" / stem
        if (d / "sweep.png").exists():
            lines += [img(d / "sweep.png", "window sweep")]
        lines += [img(d / "seams.png", "seam crops"), ""]
    lines += ["## Qualitative (Fig. A4-A6 analogues)", ""]
    lines += [img(p, p.stem) for p in pngs if p.stem.startswith("qualitative-")] + [""]
    secs = result["seconds"]
    lines += [
        "## Run",
        "",
        "Checkpoints: " + ", ".join(f"`{Path(c).name}`" for c in result["checkpoints"]) + ".",
        f"Test images: {result.get('data', 'bundled photos')}.",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()) + ".",
        "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()) + ".",
        "",
    ]
    return "\n".join(lines)
