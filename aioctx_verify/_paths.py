"""Checks on output paths, shared by the commands that write a file atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

__all__ = ["check_json_path", "unwritable"]


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


def check_json_path(
    _ctx: click.Context, _param: click.Parameter, value: Path | None
) -> Path | None:
    """Click callback of a ``--json PATH`` option: refuse an unwritable path up front, before
    any work is done (exit 2, one line)."""
    if value is not None:
        problem = unwritable(value)
        if problem is not None:
            raise click.BadParameter(problem)
    return value
