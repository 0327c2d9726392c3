"""Writing figures to disk: PNG and PDF with reproducible bytes, atomically (drawing them
is :mod:`tlc_probe.viz`)."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from .atomic import atomic_write


def save_figure(fig: Figure, out_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.png`` (200 dpi) and ``out_dir/name.pdf``; returns the
    two paths. Each file is written atomically; timestamps and software tags are left out,
    so the same figure gives the same bytes."""
    out = Path(out_dir)
    paths = []
    for ext, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        paths.append(
            atomic_write(
                out / f"{name}.{ext}",
                lambda p, ext=ext, md=metadata: fig.savefig(p, format=ext, dpi=200, metadata=md),
                fsync=False,
            )
        )
    return paths
