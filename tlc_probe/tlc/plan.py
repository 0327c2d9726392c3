"""``Plan``: a window per site, chosen rather than ruled, as a file (``plan.json``).

TLC's rule gives every site the window base/train x its training feature size, with one
base = 1.5 x train for the whole network. A plan names each site's window instead, in
feature pixels ``[h, w]``, or ``"global"`` to leave the site global; ``convert(model,
train_size, plan=...)`` applies it. The file records what the plan was made for (the
training size, the checkpoint's sha256) and how it was chosen (the candidates, the
validation PSNRs), so a plan is never applied to another network by accident::

    {"train_size": [128, 128], "checkpoint_sha256": "…", "candidates": [1, 1.5, 2, "global"],
     "windows": {"body.0.ca.avg_pool": [96, 96], "body.3.norm": "global"},
     "validation": {"uniform_psnr": 24.31, "tuned_psnr": 24.40, "images": ["…"]}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sizes import as_pair

GLOBAL = "global"


@dataclass(frozen=True)
class Plan:
    """Per-site windows for :func:`~tlc_probe.tlc.convert.convert`.

    Attributes:
        windows: {site name: (h, w) window in pixels of the site's feature map, or None
            for global}.
        train_size: (H, W) the plan was made for, in input pixels.
        checkpoint_sha256: of the checkpoint it was made for (None: not recorded).
        candidates: the multiples of the training extent (and ``"global"``) tried.
        validation: how it was checked (free-form, JSON-serialisable).
    """

    windows: Mapping[str, tuple[int, int] | None]
    train_size: tuple[int, int]
    checkpoint_sha256: str | None = None
    candidates: tuple[float | str, ...] = ()
    validation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_size", as_pair(self.train_size, "train_size"))
        checked = {}
        for site, window in self.windows.items():
            if window is None or window == GLOBAL:
                checked[str(site)] = None
                continue
            try:
                h, w = (int(v) for v in window)
            except (TypeError, ValueError):
                raise ValueError(
                    f"plan window of {site!r} must be [h, w] or 'global', got {window!r}"
                ) from None
            if h < 1 or w < 1:
                raise ValueError(f"plan window of {site!r} must be at least 1 x 1, got {window!r}")
            checked[str(site)] = (h, w)
        object.__setattr__(self, "windows", checked)

    @property
    def all_global(self) -> bool:
        """True when the plan names sites and leaves every one global (then the network
        itself is the planned one: ``convert`` would have no site to convert)."""
        return bool(self.windows) and all(w is None for w in self.windows.values())

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (the layout of ``plan.json``)."""
        return {
            "train_size": list(self.train_size),
            "checkpoint_sha256": self.checkpoint_sha256,
            "candidates": list(self.candidates),
            "windows": {s: (GLOBAL if w is None else list(w)) for s, w in self.windows.items()},
            "validation": dict(self.validation),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``plan.json`` to ``path`` (a file name or a folder); returns the file."""
        path = Path(path)
        if path.is_dir():
            path = path / "plan.json"
        text = json.dumps(json_ready(self.to_dict()), indent=2, default=_jsonable, allow_nan=False)
        path.write_text(text + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a ``plan.json`` (a file, or a folder holding one). ``ValueError`` names
        the file when it is no plan."""
        path = Path(path)
        if path.is_dir():
            path = path / "plan.json"
        try:
            data = json.loads(path.read_text())
            return cls(
                windows=data["windows"],
                train_size=data["train_size"],
                checkpoint_sha256=data.get("checkpoint_sha256"),
                candidates=tuple(data.get("candidates", ())),
                validation=data.get("validation", {}),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is no window plan (plan.json): {e}") from e

    def check_checkpoint(self, sha256: str | None) -> None:
        """Refuse a plan made for another checkpoint (``ValueError``); a plan or a
        checkpoint without a recorded hash passes."""
        if self.checkpoint_sha256 and sha256 and self.checkpoint_sha256 != sha256:
            raise ValueError(
                f"this plan was made for the checkpoint with sha256 "
                f"{self.checkpoint_sha256[:12]}…, not this one ({sha256[:12]}…): tune it again"
            )

    def window(self, site: str, feature: tuple[int, int]) -> tuple[int, int] | None:
        """The planned window of ``site``, checked against its training ``feature`` size:
        at least that size (else the converted model would not equal the network at its
        training size: ``ValueError``). None for global."""
        window = self.windows[site]
        if window is not None and (window[0] < feature[0] or window[1] < feature[1]):
            raise ValueError(
                f"plan window {list(window)} of {site!r} is smaller than the map it sees at "
                f"train_size, {list(feature)}: a window must be at least the training extent"
            )
        return window


def uniform_windows(
    features: Mapping[str, tuple[int, int]],
    train_size: int | tuple[int, int],
    ratio: float | str,
) -> dict[str, tuple[int, int] | None]:
    """TLC's rule as a plan's windows: base = ``ratio`` x ``train_size`` and each site's
    window (h * base_h // train_h, w * base_w // train_w) from its training feature size
    ({site: (h, w)}), as :func:`~tlc_probe.tlc.convert.convert` computes it; ``"global"``:
    every site None."""
    if ratio == GLOBAL:
        return dict.fromkeys(features)
    r = float(ratio)
    if not math.isfinite(r) or r < 1:
        raise ValueError(f"a window ratio must be >= 1 or 'global', got {ratio!r}")
    th, tw = as_pair(train_size, "train_size")
    bh, bw = int(r * th), int(r * tw)
    return {s: (max(1, h * bh // th), max(1, w * bw // tw)) for s, (h, w) in features.items()}


def json_ready(value: Any) -> Any:
    """``value`` with every NaN / inf float replaced by None (strict JSON: null)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return float(value) if hasattr(value, "__float__") else str(value)
