"""Atomic file writes: the one way every file of tlc-probe is written."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def temporary_name(path: str | os.PathLike[str]) -> Path:
    """A hidden temporary file for :func:`atomic_write` to write before renaming it to
    ``path``: ``.<name>.<pid>-<random>.tmp`` in the same folder (unique per call, also
    across threads; readers skip names starting with '.')."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def check_writable(folder: str | os.PathLike[str], what: str = "out") -> None:
    """Make sure files can be written in ``folder`` (created if missing) before any work:
    ``NotADirectoryError`` when it or a parent is a file, ``PermissionError`` when it
    cannot be created or written (tried with a hidden file, removed again); both name
    ``what`` and the folder."""
    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise NotADirectoryError(f"{what} {folder}: {p} is a file")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex}.tmp"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"{what} {folder} cannot be written: {e.strerror or e}") from None


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[Path], object],
    *,
    fsync: bool = True,
) -> Path:
    """Create ``path`` atomically: ``write(tmp)`` writes the content to
    :func:`temporary_name`, which is flushed to disk (``fsync``) and renamed over
    ``path``. A killed process leaves either the old file or the
    new one, never half of one; the temporary file is removed on failure. The parent
    folder is created. Returns ``path``.

    Example::

        atomic_write("out/table.csv", lambda p: frame.to_csv(p, index=False))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of ``text`` (UTF-8). Returns ``path``."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
