"""Atomic replacement of a file: a kill -9 or a full disk at any moment leaves the old file.

The text is encoded first (a bad string fails before any file exists), written to a
temporary file beside the target, flushed and fsynced, then renamed over the target with
``os.replace``; the directory is fsynced so the rename itself survives a power cut.  On any
failure the temporary file is removed and the target is untouched.

Unlike a bare ``tempfile.mkstemp`` (mode 0600), the new file gets the old file's mode, or
0666 less the process umask for a new file, so a report served by a web server stays
readable.  A kill -9 between ``mkstemp`` and ``os.replace`` can leave one ``.NAME.*.tmp``
file behind; it never replaces or damages the target.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text"]


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8).  Raises OSError, leaving ``path`` untouched."""
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(OSError):
                os.fchmod(f.fileno(), _mode_for(path))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
