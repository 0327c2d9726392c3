"""The checkpoints shipped with the package (package data), or another folder of them."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

#: Environment variable naming a folder to use instead of the shipped checkpoints.
CHECKPOINTS_ENV = "TLC_PROBE_CHECKPOINTS"


def checkpoint_dir(folder: str | os.PathLike[str] | None = None) -> Path:
    """Where the embedded default's checkpoints are: ``folder`` if given, else the folder
    named by ``$TLC_PROBE_CHECKPOINTS``, else ``tlc_probe/checkpoints`` inside the installed
    package (found through :mod:`importlib.resources`, so it works from a wheel)."""
    if folder is not None:
        return Path(folder)
    if os.environ.get(CHECKPOINTS_ENV):
        return Path(os.environ[CHECKPOINTS_ENV])
    return Path(str(files("tlc_probe") / "checkpoints"))


def shipped_checkpoints(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """The tlc-probe checkpoints (``*.pt``, no ``.resume.pt``) in :func:`checkpoint_dir`
    (``folder``), sorted by name. Raises ``FileNotFoundError`` when there are none."""
    where = checkpoint_dir(folder)
    found = sorted(p for p in where.glob("*.pt") if not p.name.endswith(".resume.pt"))
    if not found:
        raise FileNotFoundError(f"no tlc-probe checkpoints (*.pt) in {where}")
    return found


def resolve_checkpoint(name: str | os.PathLike[str]) -> Path:
    """A checkpoint given by a shipped name (``"hinet-tiny-deblur"``, found in
    :func:`checkpoint_dir`) or by a path to a file of yours; ``FileNotFoundError`` naming
    both places when neither exists."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = checkpoint_dir() / f"{name}.pt"
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"no checkpoint {name}: neither a file nor a shipped name in {checkpoint_dir()}"
    )
