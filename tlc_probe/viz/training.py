"""Training dynamics: how the global statistics drift apart as the network learns, next to
what the drift does to the whole-image output."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..metrics.shift import stat_mask
from .stats import KIND_MARKERS, REGIME_COLOURS, REGIME_LABELS, _only, _rc


def training_dynamics(
    table: pd.DataFrame,
    quality: pd.DataFrame | None = None,
    stat: str = "mean",
    model: str | None = None,
    task: str | None = None,
) -> Figure:
    """Against the training step: (a) the normalised W1 between the training-batch
    statistics and the whole-image (blue) / TLC (red) ones, median over the sites of each
    kind (one marker per kind) with the range over sites shaded, from the pooled
    (``channel == "all"``) rows of a per-step :func:`tlc_probe.shift_table` (it has a
    ``step`` column); (b) if ``quality`` (columns step, regime, psnr; e.g.
    :func:`tlc_probe.jobs.recorder.read_quality`) has rows, the PSNR (dB) of the whole-image
    and TLC outputs on the probe images. A dotted line marks the step of the best
    whole-image PSNR in both panels. Returns a Figure 9 x 3.2 in."""
    if "step" not in table.columns:
        raise ValueError("training_dynamics needs a shift table with a step column")
    tab, model = _only(table, "model", model, "training_dynamics")
    tab, task = _only(tab, "task", task, "training_dynamics")
    tab = tab[(tab["channel"].astype(str) == "all") & stat_mask(tab, stat) & tab["step"].notna()]
    if tab.empty:
        raise ValueError(f"no per-step {stat!r} shift rows for {model}/{task}")
    q = None
    if quality is not None and len(quality):
        q = quality
        for col, val in (("model", model), ("task", task)):
            if col in q.columns:
                q = q[q[col] == val]
    with _rc():
        panels = 2 if q is not None and len(q) else 1
        fig = Figure(figsize=(4.5 * panels, 3.2), layout="constrained")
        axes = fig.subplots(1, panels, squeeze=False)[0]
        ax = axes[0]
        for (kind, comparison), g in tab.groupby(["kind", "comparison"], sort=True):
            regime = comparison.split("~")[0]
            if regime not in ("whole", "tlc"):
                continue
            by_step = g.groupby("step")["w1_norm"]
            steps = np.asarray(by_step.median().index, dtype=float)
            colour = REGIME_COLOURS[regime]
            ax.plot(
                steps,
                by_step.median().to_numpy(),
                marker=KIND_MARKERS.get(kind, "o"),
                color=colour,
                ls="-" if kind == "in" else "--",
                label=f"{REGIME_LABELS[regime]} ~ train ({kind})",
            )
            ax.fill_between(steps, by_step.min(), by_step.max(), color=colour, alpha=0.12)
        ax.set_xlabel("training step")
        ax.set_ylabel("W1 / std(train), median over sites")
        ax.set_title(f"(a) shift from the training batch ({stat})")
        ax.legend(frameon=False)
        best = None
        if panels == 2:
            ax = axes[1]
            for regime, g in q.groupby("regime", sort=False):
                g = g.sort_values("step")
                ax.plot(
                    g["step"],
                    g["psnr"],
                    marker="o",
                    color=REGIME_COLOURS.get(regime, "#7f7f7f"),
                    label=REGIME_LABELS.get(regime, regime),
                )
            whole = q[q["regime"] == "whole"]
            if len(whole):
                best = int(whole.loc[whole["psnr"].idxmax(), "step"])
            ax.set_xlabel("training step")
            ax.set_ylabel("PSNR on the probe images (dB)")
            ax.set_title("(b) output quality")
            ax.legend(frameon=False)
        if best is not None:
            for a in axes:
                a.axvline(best, color="#555555", ls=":", lw=1)
        fig.suptitle(f"{model} · {task}: statistics during training")
    return fig
