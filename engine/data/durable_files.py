"""Crash-safe file-system steps: flush to disk, switch a whole directory or a small file in one rename.

A reader must see either the old state or the new one, never a half-written file: everything is
written under a temporary name beside its destination, flushed (``fsync`` of the files and of the
directory that lists them), and then renamed, which POSIX makes atomic within one file system.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Persist a directory's entries (a file created or renamed in it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Every file below ``path`` and every directory on the way, deepest first."""
    for dirpath, _dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


def rename_dir_if_absent(source: Path, target: Path) -> bool:
    """Rename directory ``source`` to ``target``; False (nothing moved) when ``target`` already exists.

    ``os.rename`` replaces an *empty* directory silently, so an existing target is refused first;
    the rename itself still fails when a concurrent writer created a non-empty target in between.
    """
    if target.exists():
        return False
    try:
        os.rename(source, target)
    except OSError:
        if target.exists():
            return False
        raise
    fsync_dir(target.parent)
    return True


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a reader sees the old content or the new, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)
