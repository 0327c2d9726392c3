"""Interactive exploration of a statistics store in JupyterLab: :class:`StatsSource`
(lazy, bounded-memory reading) and :class:`Explorer` / :func:`explore` (ipywidgets,
imported when first used, so the source works without ipywidgets)."""

from .source import REGIMES, SITE_COLUMNS, StatsSource

__all__ = ["REGIMES", "SITE_COLUMNS", "Explorer", "StatsSource", "explore"]


def __getattr__(name: str):
    if name in ("Explorer", "explore"):
        from . import widget

        return getattr(widget, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
