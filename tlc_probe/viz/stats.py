"""Figures from the tidy statistics and the shift table (seaborn, returned as Figures).

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state) and
returns it; :func:`tlc_probe.store.figures.save_figure` writes it as PNG and PDF. Colours follow
the paper's Fig. A3: green = training patches, blue = whole images, red = whole images with TLC;
overlapping tiles get a fourth colour (purple), the training-extent windows of the whole
image (the ``window`` regime) a fifth (orange).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..metrics.shift import COMPARISONS, parse_comparison, stat_mask
from ..metrics.shift import shift_table as _shift_table

REGIME_COLOURS: dict[str, str] = {
    "train": "#2ca02c",  # green
    "whole": "#1f77b4",  # blue
    "tlc": "#d62728",  # red
    "tiles": "#9467bd",  # purple
    "window": "#ff7f0e",  # orange
}
REGIME_LABELS: dict[str, str] = {
    "train": "train patches",
    "whole": "whole image",
    "tlc": "whole image + TLC",
    "tiles": "tiles",
    "window": "whole image, training-extent windows",
}
KIND_MARKERS: dict[str, str] = {"in": "o", "se": "s", "attn": "^"}
_MAX_HIST_BINS = 80
_FONT = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6}


def _comparison_colour(comparison: str) -> str:
    cmp, _ = parse_comparison(comparison)
    return REGIME_COLOURS.get(cmp, "#7f7f7f")


def _only(df: pd.DataFrame, column: str, value: str | None, what: str) -> tuple[pd.DataFrame, str]:
    """Rows of ``df`` with ``column == value``; ``value=None`` is allowed if there is one."""
    present = sorted(df[column].astype(str).unique())
    if value is None:
        if len(present) != 1:
            raise ValueError(f"{what}: several {column}s {present}; pass {column}=...")
        value = present[0]
    elif value not in present:
        raise ValueError(f"{what}: {column} {value!r} not in {present}")
    return df[df[column].astype(str) == value], value


def fig_a3(
    stats: pd.DataFrame,
    site: str,
    stat: str = "mean",
    shift: pd.DataFrame | None = None,
    model: str | None = None,
    task: str | None = None,
    regimes: Sequence[str] | None = None,
    channel: int | None = None,
    ncols: int | None = None,
) -> Figure:
    """Paper Fig. A3 for one site: the distribution of a statistic, training vs inference.

    Panel (a) train (green) vs whole images (blue); (b) train vs whole images with TLC (red);
    (c), if the ``tiles`` regime is present, train vs overlapping tiles (purple); (d), if the
    ``window`` regime is present, train vs the whole image's features averaged over
    training-extent windows (orange). Values are
    pooled over channels (each local mean of the tlc regime is one value) and drawn as
    density step histograms on bins common to all panels; panels share both axes. Legend
    entries carry each regime's sample size (images, crops or tiles when ``stats`` has a
    ``sample`` column; values; channels pooled) and W1 of the pooled (``channel ==
    "all"``) rows of ``shift`` (computed from ``stats`` when not given), with KL only
    where both sides have at least :data:`KL_MIN_N` values (KL on a few values is biased);
    a note under the panels says when KL was left out, when KL and W1 order TLC and
    whole differently (W1 is the headline) and when TLC equals whole (its windows cover
    the maps). ``model``/``task`` may be omitted when ``stats`` holds only one.

    ``regimes`` chooses what is drawn (default: every regime present): one panel per
    inference regime in it, the training histogram in each panel if ``"train"`` is in it
    (the training values still set the bins and the W1/KL of the legends, so hiding them
    changes no number); with ``"train"`` alone, one panel of the training values.
    ``channel`` restricts the values to one channel, and the legends to that channel's
    rows of ``shift`` (a per-channel table; computed here when not given). Panels lie in
    one row, or in rows of ``ncols``. Returns a Figure 3.5 in wide per column (at least
    7 in), 2.6 in high per row.
    """
    df, model = _only(stats, "model", model, "fig_a3")
    df, task = _only(df, "task", task, "fig_a3")
    df = df[(df["site"].astype(str) == site) & stat_mask(df, stat)]
    if channel is not None:
        df = df[df["channel"] == channel]
    what = f"site {site!r}" + ("" if channel is None else f", channel {channel}")
    if df.empty:
        raise ValueError(f"no {stat!r} statistics for {what} of {model}/{task}")
    present = set(df["regime"].astype(str))
    if "train" not in present:
        raise ValueError(f"{what} has no train statistics")
    chosen = present if regimes is None else set(regimes)
    if unknown := chosen - set(REGIME_COLOURS):
        raise ValueError(f"unknown regimes {sorted(unknown)}; known: {list(REGIME_COLOURS)}")
    others = [r for r in ("whole", "tlc", "tiles", "window") if r in present and r in chosen]
    if not others and (regimes is None or "train" not in chosen):
        raise ValueError(f"{what} has no whole/tlc/tiles/window statistics to draw")
    draw_train = "train" in chosen
    kind, depth = str(df["kind"].iloc[0]), int(df["depth"].iloc[0])
    shown = str(df["stat"].iloc[0])  # 'mean' stands for an attention site's logit_mean

    if shift is None:
        comparisons = [f"{r}~train" for r in others]
        shift = _shift_table(df, comparisons=comparisons, per_channel=channel is not None)
    rows = shift[
        (shift["model"].astype(str) == model)
        & (shift["task"].astype(str) == task)
        & (shift["site"].astype(str) == site)
        & stat_mask(shift, stat)
        & (shift["channel"].astype(str) == ("all" if channel is None else str(channel)))
    ].set_index("comparison")

    values = {r: g["value"].to_numpy(np.float64) for r, g in df.groupby("regime", observed=True)}
    values = {str(r): v[np.isfinite(v)] for r, v in values.items()}
    pooled = np.concatenate(list(values.values()))
    edges = np.histogram_bin_edges(values["train"], bins="fd", range=(pooled.min(), pooled.max()))
    if edges.size - 1 > _MAX_HIST_BINS or edges.size < 3:
        edges = np.linspace(pooled.min(), pooled.max() + (pooled.min() == pooled.max()), 41)

    sizes = _sizes(df, values, channel)
    noop = (
        "tlc" in values
        and "whole" in values
        and values["tlc"].size == values["whole"].size
        and np.allclose(np.sort(values["tlc"]), np.sort(values["whole"]), rtol=1e-6, atol=0)
    )
    letters = "abcd"
    panels = others or ["train"]
    with _rc():
        cols = len(panels) if ncols is None else max(1, min(ncols, len(panels)))
        rows_ = -(-len(panels) // cols)
        width = max(7.0, 3.5 * cols)
        fig = Figure(figsize=(width, 2.6 * rows_), layout="constrained")
        grid = fig.subplots(rows_, cols, sharex=True, sharey=True, squeeze=False)
        for ax in grid.flat[len(panels) :]:
            ax.remove()
        axes = grid.flat[: len(panels)]
        notes = []
        kl_hidden = False
        for ax, letter, regime in zip(axes, letters, panels, strict=False):
            comparison = f"{regime}~train"
            label = f"{REGIME_LABELS.get(regime, regime)} ({sizes[regime]})"
            if comparison in rows.index:
                row = rows.loc[comparison]
                label += f"\nW1={row['w1']:.3g}"
                lo, hi = row.get("w1_lo", np.nan), row.get("w1_hi", np.nan)
                if np.isfinite(lo) and np.isfinite(hi):  # the 95 % interval over images
                    label += f" [{lo:.3g}, {hi:.3g}]"
                if min(row.get("n_ref", np.inf), row.get("n_cmp", np.inf)) >= KL_MIN_N:
                    label += f" KL={row['kl']:.3g}"
                else:
                    kl_hidden = True
            if regime == "tlc" and noop:
                ax.text(
                    0.98,
                    0.6,
                    "= whole here:\nTLC windows\ncover the maps",
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize=7,
                    color="#d62728",
                )
            drawn = (
                [("train", f"{REGIME_LABELS['train']} ({sizes['train']})")] if draw_train else []
            )
            if regime != "train":
                drawn.append((regime, label))
            for name, lab in drawn:
                sns.histplot(
                    x=values[name],
                    bins=edges,
                    stat="density",
                    element="step",
                    fill=True,
                    alpha=0.25,
                    color=REGIME_COLOURS.get(name, "#7f7f7f"),
                    label=lab,
                    ax=ax,
                )
            title = REGIME_LABELS.get(regime, regime)
            ax.set_title(f"({letter}) {'train vs ' if regime != 'train' else ''}{title}")
            ax.set_xlabel(
                f"{shown} of channel {channel}" if channel is not None else f"{shown} per channel"
            )
            ax.xaxis.set_tick_params(labelbottom=True)  # also above a removed panel
        # head-room above the tallest bar so the legends do not hide the histograms
        axes[0].set_ylim(0, 1.4 * max(ax.get_ylim()[1] for ax in axes))
        for ax in axes:
            ax.legend(loc="upper left", frameon=False)
        for ax in grid[:, 0]:
            ax.set_ylabel("density")
        where = "" if channel is None else f" · channel {channel}"
        fig.suptitle(f"{model} · {task} · {site} ({kind}, depth {depth}){where}")
        if kl_hidden:
            notes.append(f"KL left out where n < {KL_MIN_N} values (biased at small n)")
        if _kl_w1_disagree(rows):
            notes.append(
                "KL and W1 disagree on TLC vs whole: W1 is the headline (KL depends on bins)"
            )
        if noop:
            notes.append("TLC equals whole here: red hides blue")
        if notes:
            fig.supxlabel("; ".join(notes), fontsize=7)
    return fig


#: Fewest values on either side for which a legend shows KL (it is biased at small n).
KL_MIN_N = 20


def _sizes(df: pd.DataFrame, values: dict[str, np.ndarray], channel: int | None) -> dict:
    """Per regime the legend's sample size: images (or crops / tiles) and values."""
    n_ch = df["channel"].nunique() if channel is None else 1
    pooled = f", {n_ch} channels pooled" if n_ch > 1 else ""
    out = {}
    for regime, v in values.items():
        if "sample" in df.columns:
            n = df.loc[df["regime"].astype(str) == regime, "sample"].nunique()
            unit = {"train": "crop", "tiles": "tile"}.get(regime, "image")
            out[regime] = f"{n} {unit}{'s' if n != 1 else ''}, n={v.size}{pooled}"
        else:
            out[regime] = f"n={v.size}{pooled}"
    return out


def _kl_w1_disagree(rows: pd.DataFrame) -> bool:
    """True when KL and W1 order tlc and whole differently (both rows present)."""
    if not {"whole~train", "tlc~train"} <= set(rows.index):
        return False
    w, t = rows.loc["whole~train"], rows.loc["tlc~train"]
    dw, dk = float(t["w1"] - w["w1"]), float(t["kl"] - w["kl"])
    return bool(np.isfinite(dk) and dw * dk < 0)


def choose_site(shift_table: pd.DataFrame, kind: str, model: str | None = None) -> str:
    """The site to show for ``kind`` (``"in"`` or ``"se"``): the one with the largest
    normalised W1 (``w1_norm``) between whole images and training (``whole~train``, stat
    ``mean``, channels pooled), i.e. where the shift the paper describes is most visible.
    Ties go to the shallower site. Restricted to ``model`` if given."""
    t = shift_table
    sel = (
        (t["kind"].astype(str) == kind)
        & (t["comparison"] == "whole~train")
        & stat_mask(t, "mean")
        & (t["channel"].astype(str) == "all")
        & t["w1_norm"].notna()
    )
    if model is not None:
        sel &= t["model"].astype(str) == model
    rows = t[sel].sort_values(["w1_norm", "depth"], ascending=[False, True], kind="stable")
    if rows.empty:
        raise ValueError(f"no whole~train rows of kind {kind!r} to choose a site from")
    return str(rows["site"].iloc[0])


def _tasks(table: pd.DataFrame, task: str | None) -> list[str]:
    present = sorted(table["task"].astype(str).unique())
    if task is None:
        return present
    if task not in present:
        raise ValueError(f"task {task!r} not in {present}")
    return [task]


def _pooled(
    table: pd.DataFrame, model: str | None, stat: str, what: str
) -> tuple[pd.DataFrame, str]:
    t = table[(table["channel"].astype(str) == "all") & stat_mask(table, stat)]
    t, model = _only(t, "model", model, what)
    if t.empty:
        raise ValueError(f"{what}: no pooled {stat!r} rows for {model}")
    return t, model


def _comparisons(table: pd.DataFrame) -> list[str]:
    present = set(table["comparison"])
    return [c for c in COMPARISONS if c in present] + sorted(present - set(COMPARISONS))


def _normalised_interval(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) of ``w1_norm`` from ``w1_lo`` / ``w1_hi`` (W1's interval scaled by the
    row's own w1_norm / w1), or None when the rows carry no interval."""
    if "w1_lo" not in rows.columns or rows["w1_lo"].isna().all():
        return None
    w1 = rows["w1"].to_numpy(float)
    scale = np.divide(rows["w1_norm"].to_numpy(float), w1, out=np.zeros_like(w1), where=w1 > 0)
    return rows["w1_lo"].to_numpy(float) * scale, rows["w1_hi"].to_numpy(float) * scale


def depth_profile(
    shift_table: pd.DataFrame,
    stat: str = "mean",
    model: str | None = None,
    task: str | None = None,
    highlight: str | None = None,
) -> Figure:
    """Normalised W1 against site depth: one line per comparison with training (whole blue,
    tlc red, tiles purple, window orange), one marker per site shaped by its kind (circle
    ``in``, square ``se``, triangle ``attn``; for ``stat="mean"`` an attention site shows
    its ``logit_mean``), with a shaded band for the 95 % interval over images where the
    table has one (``w1_lo`` / ``w1_hi``, scaled as W1 is). Uses the pooled rows of
    ``stat``; one panel per task (or only
    ``task``). Comparisons with another reference (the decomposition's links) are drawn by
    :func:`tlc_probe.viz.decomposition_figure`; they appear here only when the table has
    no ``~train`` comparison. ``highlight`` names a site to mark with a grey vertical line
    at its depth, labelled with its name (in each panel whose task has it). Returns the
    Figure."""
    t, model = _pooled(shift_table, model, stat, "depth_profile")
    tasks = _tasks(t, task)
    comps = _comparisons(t)
    comps = [c for c in comps if c.endswith("~train")] or comps
    with _rc():
        fig = Figure(figsize=(7.0, 2.6 * len(tasks)), layout="constrained")
        axes = fig.subplots(len(tasks), 1, squeeze=False, sharex=True)[:, 0]
        for ax, tk in zip(axes, tasks, strict=True):
            tt = t[t["task"].astype(str) == tk]
            for comp in comps:
                c = tt[tt["comparison"] == comp].sort_values(["depth", "site"])
                if c.empty:
                    continue
                colour = _comparison_colour(comp)
                ax.plot(c["depth"], c["w1_norm"], color=colour, lw=1.2, label=comp)
                band = _normalised_interval(c)
                if band is not None:  # the 95 % interval over images, same scale
                    ax.fill_between(c["depth"], *band, color=colour, alpha=0.15, lw=0)
                for kind, marker in KIND_MARKERS.items():
                    k = c[c["kind"].astype(str) == kind]
                    ax.scatter(
                        k["depth"], k["w1_norm"], color=colour, marker=marker, s=14, zorder=3
                    )
            handles = [Line2D([], [], color=_comparison_colour(c), label=c) for c in comps]
            kinds = sorted(set(tt["kind"].astype(str)))
            handles += [
                Line2D(
                    [], [], ls="", marker=KIND_MARKERS.get(k, "^"), color="k", label=f"{k} sites"
                )
                for k in kinds
            ]
            marked = tt[tt["site"].astype(str) == highlight]["depth"]
            if highlight is not None and not marked.empty:
                at = int(marked.iloc[0])
                ax.axvline(at, color="0.5", lw=0.8, ls="--", zorder=1, label="_highlight")
                ax.annotate(
                    highlight,
                    (at, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -3),
                    textcoords="offset points",
                    va="top",
                    fontsize=6,
                    color="0.3",
                )
            ax.legend(handles=handles, frameon=False, ncols=2)
            ax.set_ylabel(f"W1 / std(train) of {stat}")
            ax.set_title(f"{model} · {tk}")
            ax.set_ylim(bottom=0)
        axes[-1].set_xlabel("site depth (execution order)")
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


#: How a shift-table column reads on a colour bar or an axis.
METRIC_LABELS = {
    "w1_norm": "W1 / std(train values)",
    "w1": "W1 (units of the statistic)",
    "kl": "KL(train || other), nats",
    "js": "Jensen-Shannon, nats",
}


def heatmap(
    shift_table: pd.DataFrame,
    model: str,
    stat: str = "mean",
    metric: str = "w1_norm",
    task: str | None = None,
) -> Figure:
    """``metric`` (a column of the shift table) for every site (rows, ordered by depth,
    labelled ``site (kind)``) and comparison (columns), annotated with its value; pooled
    rows of ``stat``; one panel per task (or only ``task``). Returns the Figure."""
    t, model = _pooled(shift_table, model, stat, "heatmap")
    tasks = _tasks(t, task)
    comps = _comparisons(t)
    n_sites = t.groupby("task")["site"].nunique().max()
    with _rc():
        fig = Figure(
            figsize=(1.6 + 1.1 * len(comps) * len(tasks), 1.0 + 0.22 * n_sites),
            layout="constrained",
        )
        axes = fig.subplots(1, len(tasks), squeeze=False)[0]
        for ax, tk in zip(axes, tasks, strict=True):
            tt = t[t["task"].astype(str) == tk].copy()
            tt["row"] = tt["site"].astype(str) + " (" + tt["kind"].astype(str) + ")"
            order = tt.sort_values(["depth", "site"]).drop_duplicates("row")["row"]
            grid = tt.pivot_table(index="row", columns="comparison", values=metric, aggfunc="first")
            grid = grid.reindex(index=list(order), columns=comps)
            sns.heatmap(
                grid,
                annot=True,
                fmt=".2g",
                cmap="viridis",
                cbar_kws={"label": METRIC_LABELS.get(metric, metric)},
                annot_kws={"fontsize": 6},
                ax=ax,
            )
            ax.set_title(f"{model} · {tk} · {stat}")
            ax.set_xlabel("")
            ax.set_ylabel("site (kind), by depth")
    return fig


def _rc():
    import matplotlib as mpl

    return mpl.rc_context(_FONT)
