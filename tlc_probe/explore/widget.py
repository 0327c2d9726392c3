"""The interactive explorer (ipywidgets): pick a model, a site, a statistic, a channel and
the regimes, and see the Fig. A3 panels, the site's shift rows and the depth profile."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..metrics.shift import parse_comparison
from ..sites import PRIMARY_STAT
from ..viz.stats import REGIME_LABELS, depth_profile, fig_a3
from .source import REGIMES, StatsSource

#: Columns of the shift rows shown beside the distributions, and their headers.
TABLE_COLUMNS = {
    "comparison": "comparison",
    "w1": "W1",
    "w1_norm": "W1 / std(train)",
    "kl": "KL",
    "js": "JS",
}
_DPI = 90


def _widgets():
    try:
        import ipywidgets
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the explorer needs ipywidgets: pip install -e '.[lab]' (make env installs it)"
        ) from e
    return ipywidgets


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


class Explorer:
    """An ipywidgets view of a statistics store.

    Controls: ``test_set`` (shown when ``source`` maps several test sets to their
    sources), ``model`` (each (model, task) of the store), ``site`` (ordered by depth,
    labelled ``depth · site (kind)``), ``stat``, ``channel`` ("all" pools the channels)
    and one checkbox per regime in :attr:`regimes` (train, whole, tlc, tiles, window;
    those the site lacks are disabled). Views: the Fig. A3 panels of
    :func:`~tlc_probe.viz.fig_a3` (W1 with its 95 % interval over images and KL in the
    legends) with the site's shift rows
    beside them (comparisons between ticked regimes or with training), and the depth profile of
    :func:`~tlc_probe.viz.depth_profile` with the site marked; its slider picks the site
    by position and follows the site dropdown. Figures are PNG images (:attr:`figure`,
    :attr:`profile`); the frames and figures last drawn are :attr:`shown_table`,
    :attr:`shown_figure`, :attr:`shown_profile`. A selection that cannot be drawn (no
    training statistics for that channel, say) shows its reason in :attr:`message` and
    an empty image.

    Only what is drawn is read: a site's rows when it is selected (the last few kept),
    and the pooled shift rows of a model's sites when its depth profile is first drawn
    (see :class:`~tlc_probe.explore.StatsSource`).

    Example (in a notebook)::

        from tlc_probe.explore import explore
        explore("results")           # the output folder of `tlc-probe reproduce`
    """

    def __init__(self, source: StatsSource | Mapping[str, StatsSource], stat: str = "mean") -> None:
        w = _widgets()
        self.sources = dict(source) if isinstance(source, Mapping) else {"": source}
        if not self.sources:
            raise ValueError("no statistics source to explore")
        self.source = next(iter(self.sources.values()))
        groups = self.source.groups
        if not groups:
            raise ValueError("the statistics store holds no sites")
        wide = {"description_width": "initial"}
        self.test_set = w.Dropdown(
            description="test set",
            options=list(self.sources),
            style=wide,
            layout=w.Layout(width="14em", display="" if len(self.sources) > 1 else "none"),
        )
        self.model = w.Dropdown(
            description="model",
            options=[(f"{m} · {t}", (m, t)) for m, t in groups],
            style=wide,
        )
        self.site = w.Dropdown(description="site", style=wide, layout=w.Layout(width="28em"))
        self.stat = w.Dropdown(description="stat", style=wide, layout=w.Layout(width="12em"))
        self.channel = w.Dropdown(description="channel", style=wide, layout=w.Layout(width="10em"))
        self.regimes = {
            r: w.Checkbox(value=True, description=REGIME_LABELS[r], indent=False) for r in REGIMES
        }
        self.position = w.IntSlider(
            description="site by depth", min=0, max=0, continuous_update=False, style=wide
        )
        self.message = w.HTML()
        # images at their own size (scaled down, never up); the table takes the rest
        self.figure = w.Image(
            format="png", layout=w.Layout(max_width="70%", height="auto", align_self="flex-start")
        )
        self.table = w.HTML(layout=w.Layout(flex="0 0 auto", padding="0 0 0 1em"))
        self.profile = w.Image(
            format="png", layout=w.Layout(max_width="100%", height="auto", align_self="flex-start")
        )
        self.widget = w.VBox(
            [
                w.HBox([self.test_set, self.model, self.site, self.stat, self.channel]),
                w.HBox(list(self.regimes.values())),
                self.message,
                w.HBox([self.figure, self.table]),
                w.HTML("<b>Depth profile</b>"),
                self.position,
                self.profile,
            ]
        )
        # CSS classes name the parts for a browser (tests/test_lab_browser.py finds them)
        self.widget.add_class("tlc-probe-explorer")
        for name in (
            "test_set",
            "model",
            "site",
            "stat",
            "channel",
            "position",
            "figure",
            "profile",
        ):
            getattr(self, name).add_class(f"tlc-probe-{name}")
        self.shown_table: pd.DataFrame | None = None
        self.shown_figure: Figure | None = None
        self.shown_profile: Figure | None = None
        self._stat_wanted = stat
        self._updating = False
        # why a view is empty, by view: shown together in ``message``
        self._notes = {"distribution": "", "profile": ""}

        self.test_set.observe(self._on_test_set, "value")
        self.model.observe(self._on_model, "value")
        self.site.observe(self._on_site, "value")
        self.position.observe(self._on_position, "value")
        for control in (self.stat, self.channel, *self.regimes.values()):
            control.observe(self._on_view, "value")
        self._on_model()

    # -- what is selected ---------------------------------------------------------------

    @property
    def selected_regimes(self) -> list[str]:
        """The ticked regimes, in :data:`~tlc_probe.explore.source.REGIMES` order."""
        return [r for r, box in self.regimes.items() if box.value and not box.disabled]

    def _key(self) -> tuple[str, str, str]:
        model, task = self.model.value
        return model, task, self.site.value

    def _primary(self) -> str:
        """The statistic that ``"mean"`` stands for at the selected site
        (:data:`~tlc_probe.sites.PRIMARY_STAT` of its kind)."""
        model, task, site = self._key()
        sites = self.source.sites(model, task)
        kind = sites.loc[sites["site"] == site, "kind"].iloc[0]
        return PRIMARY_STAT.get(kind, "mean")

    def _channel(self) -> int | None:
        return None if self.channel.value == "all" else int(self.channel.value)

    # -- events -------------------------------------------------------------------------

    def _on_test_set(self, change: dict) -> None:
        """Another test set: its source, its models (the same one kept when it has it)."""
        self.source = self.sources[change["new"]]
        groups = self.source.groups
        if not groups:
            self._notes["distribution"] = f"test set {change['new']} holds no sites"
            return
        kept = self.model.value if self.model.value in groups else groups[0]
        self._updating = True
        try:
            self.model.options = [(f"{m} · {t}", (m, t)) for m, t in groups]
            self.model.value = kept
        finally:
            self._updating = False
        self._on_model()

    def _on_model(self, change: dict | None = None) -> None:
        if change is not None and self._updating:
            return  # (a test set's models being set: _on_test_set calls this once)
        model, task = self.model.value
        sites = self.source.sites(model, task)
        self._updating = True
        try:
            self.site.options = [
                (f"{d:>3} · {s} ({k})", s)
                for s, k, d in zip(sites["site"], sites["kind"], sites["depth"], strict=True)
            ]
            self.position.max = len(sites) - 1
            self.site.value = sites["site"].iloc[0]
            self.position.value = 0
            self._site_choices()
        finally:
            self._updating = False
        self.redraw(profile=True)

    def _on_site(self, change: dict) -> None:
        if self._updating or change["new"] is None:
            return
        self._updating = True
        try:
            model, task = self.model.value
            order = list(self.source.sites(model, task)["site"])
            self.position.value = order.index(change["new"])
            self._site_choices()
        finally:
            self._updating = False
        self.redraw(profile=True)

    def _on_position(self, change: dict) -> None:
        if self._updating:
            return
        model, task = self.model.value
        self.site.value = self.source.sites(model, task)["site"].iloc[change["new"]]

    def _on_view(self, change: dict) -> None:
        if self._updating:
            return
        if change["owner"] is self.stat:
            self._stat_wanted = change["new"]
        profile = change["owner"] is not self.channel
        self.redraw(profile=profile)

    def _site_choices(self) -> None:
        """Stat, channel and regime controls for the site now selected (keeping the
        current choices where the site has them)."""
        offered = self.source.choices(*self._key())
        stats = offered["stat"]
        wanted = self._stat_wanted
        if wanted == "mean" and self._primary() in stats:
            wanted = self._primary()  # an attention site's counterpart of a pooled mean
        self.stat.options = stats
        self.stat.value = wanted if wanted in stats else stats[0]
        channel = self.channel.value
        self.channel.options = ["all"] + [str(c) for c in offered["channel"]]
        self.channel.value = channel if channel in self.channel.options else "all"
        for r, box in self.regimes.items():
            box.disabled = r not in offered["regime"]

    # -- drawing ------------------------------------------------------------------------

    def redraw(self, profile: bool = True) -> None:
        """Draw the distributions and the shift rows of the current selection, and the
        depth profile too when ``profile``."""
        model, task, site = self._key()
        chosen = self.selected_regimes
        self._notes["distribution"] = ""
        try:
            shift = self.source.site_shift(model, task, site, self.stat.value, self._channel())
            fig = fig_a3(
                self.source.rows(model, task, site),
                site,
                stat=self.stat.value,
                shift=shift,
                model=model,
                task=task,
                regimes=chosen,
                channel=self._channel(),
                ncols=2,
            )
        except ValueError as e:
            self._notes["distribution"] = f"nothing to draw: {e}"
            self.figure.value = b""
            self.shown_figure, self.shown_table = None, None
            self.table.value = ""
        else:
            self.shown_figure = fig
            self.figure.value = _png(fig)
            self.shown_table = _rows_between(shift, chosen)
            self.table.value = _table_html(self.shown_table)
        if profile:
            self._draw_profile(model, task, site, chosen)
        notes = [n for n in self._notes.values() if n]
        self.message.value = "<br>".join(f"<span style='color:#b00'>{n}</span>" for n in notes)

    def _draw_profile(self, model: str, task: str, site: str, chosen: Sequence[str]) -> None:
        # 'mean' stands for each site's primary statistic (an attention site's logit_mean):
        # a profile of 'logit_mean' would hold the attention sites alone
        stat = self.stat.value
        if self._stat_wanted == "mean" and stat == self._primary():
            stat = "mean"
        self._notes["profile"] = ""
        try:
            table = _rows_between(self.source.profile(model, task), chosen)
            if table.empty:
                raise ValueError("no comparison between the ticked regimes")
            fig = depth_profile(table, stat=stat, model=model, task=task, highlight=site)
        except ValueError as e:
            self._notes["profile"] = f"no depth profile: {e}"
            self.profile.value = b""
            self.shown_profile = None
            return
        self.shown_profile = fig
        self.profile.value = _png(fig)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def _rows_between(table: pd.DataFrame, regimes: Sequence[str]) -> pd.DataFrame:
    """The rows of ``table`` whose comparison's two regimes are both in ``regimes`` or
    are the training reference (unticking ``train`` hides its histogram, not the
    comparisons with it)."""
    shown = {*regimes, "train"}
    pairs = [parse_comparison(c) for c in table["comparison"].astype(str)]
    keep = [cmp in shown and ref in shown for cmp, ref in pairs]
    return table[keep].reset_index(drop=True)


def _table_html(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "<i>no comparison between the ticked regimes</i>"
    shown = rows[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)
    shown["n cmp / ref"] = [f"{c} / {r}" for c, r in zip(rows["n_cmp"], rows["n_ref"], strict=True)]
    html = shown.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0)
    html = html.replace("<table", "<table style='white-space: nowrap; font-size: 11px'", 1)
    html = html.replace("<th>", "<th style='padding: 1px 8px'>")
    html = html.replace("<td>", "<td style='padding: 1px 8px; text-align: right'>")
    return f"<b>shift of this site</b> (KL, JS in nats){html}"


def explore(
    stats: str | os.PathLike[str] | StatsSource, stat: str = "mean", **source_options
) -> Explorer:
    """An :class:`Explorer` of ``stats``: a :class:`StatsSource`, or a path that
    :meth:`StatsSource.open` takes (the output folder of ``tlc-probe reproduce``, a
    statistics directory or a folder of them); ``source_options`` go to
    :meth:`StatsSource.open_test_sets`. A main job's folder with its generated test set
    gets a "test set" control (photos / synthetic). Display it as a notebook cell's last
    expression."""
    if isinstance(stats, StatsSource):
        return Explorer(stats, stat=stat)
    return Explorer(StatsSource.open_test_sets(stats, **source_options), stat=stat)
