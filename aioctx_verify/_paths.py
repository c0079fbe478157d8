"""Checks on output paths, shared by the commands that write a file atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["unwritable"]


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written atomically (a temporary file beside it), or None."""
    parent = path.parent
    if path.is_dir():
        return f"{path} is a directory"
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"cannot write {path}: cannot create directory {parent} ({e.strerror})"
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as e:
        return f"cannot write {path}: cannot create files in {parent} ({e.strerror})"
    os.close(fd)
    os.unlink(probe)
    return None
