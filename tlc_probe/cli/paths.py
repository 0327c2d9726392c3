"""Checks of the paths a command was given, made before any computation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def existing(paths: Iterable[str], flag: str, kind: str = "any") -> None:
    """Raise ``FileNotFoundError`` naming ``flag`` for the first of ``paths`` that does not
    exist, or is not a file (``kind="file"``) or a folder (``kind="dir"``)."""
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise FileNotFoundError(f"{flag} {p}: no such file or folder")
        if kind == "file" and not path.is_file():
            raise FileNotFoundError(f"{flag} {p}: not a file")
        if kind == "dir" and not path.is_dir():
            raise FileNotFoundError(f"{flag} {p}: not a folder")


#: Folders :func:`writable_folder` created in this process: the CLI removes those still
#: empty when its command fails (nothing half-written, no empty leftovers).
CREATED: list[Path] = []


def writable_folder(path: str, flag: str = "--out") -> None:
    """Raise naming ``flag`` unless files can be written in the folder ``path`` (created
    if missing): checked before any computation, so a bad ``--out`` never costs a run."""
    from ..store.atomic import check_writable

    missing = [p for p in (Path(path), *Path(path).parents) if not p.exists()]
    check_writable(path, flag)
    CREATED.extend(missing)  # deepest first


def remove_empty_created() -> None:
    """Remove the folders :func:`writable_folder` created that are still empty."""
    for p in sorted(CREATED, key=lambda q: len(q.parts), reverse=True):  # deepest first
        try:
            p.rmdir()  # only an empty folder
        except OSError:
            pass
    CREATED.clear()
