"""The engine flags shared by ``aioctx-verify run`` and ``aioctx-verify mutants``.

``--workers N`` starts a Dask ``LocalCluster`` of N single-thread worker processes;
``--scheduler ADDR|FILE`` uses an existing cluster (``tcp://HOST:PORT``, or the file that
``dask scheduler --scheduler-file FILE`` wrote); neither runs every shard in this process.
``--jobs N`` is the older name: 1 runs in this process, more is ``--workers N``.  Every
mistake is a usage error (exit status 2, one line), found before any work is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from aioctx_verify.engine import (
    Engine,
    EngineError,
    EngineUnavailable,
    LocalEngine,
    make_engine,
)

__all__ = ["engine_options", "open_engine", "shard_progress"]

F = TypeVar("F", bound=Callable[..., Any])


class EngineUsageError(click.UsageError):
    """A bad engine flag, a missing Dask extra or an unreachable cluster: exit 2, the
    message after the command's name."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ctx=click.get_current_context(silent=True))


def _scheduler(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise click.BadParameter("give tcp://HOST:PORT or a scheduler file")
    if "://" in value:
        return value
    path = Path(value)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "no such file"
        raise click.BadParameter(
            f"{value}: {what}; pass tcp://HOST:PORT or the file that "
            "dask scheduler --scheduler-file wrote"
        )
    return value


def engine_options(f: F) -> F:
    """Add ``--workers`` and ``--scheduler`` to a command."""
    f = click.option(
        "--scheduler",
        metavar="ADDR|FILE",
        callback=_scheduler,
        help="Run the shards on an existing Dask cluster: tcp://HOST:PORT or a scheduler "
        "file (needs the dask extra).",
    )(f)
    f = click.option(
        "--workers",
        type=click.IntRange(min=1),
        help="Run the shards on a local Dask cluster of N worker processes (needs the "
        "dask extra: pip install 'aioctx-verify[dask]'). Default: in this process.",
    )(f)
    return f


def open_engine(
    workers: int | None,
    scheduler: str | None,
    *,
    jobs: int | None = None,
    say: Callable[[str], None] | None = None,
) -> Engine:
    """The engine the flags ask for (``jobs``: the older ``--jobs``; more than one is
    ``--workers``).

    Raises:
        EngineUsageError: contradicting flags, no Dask extra, a cluster not reachable.
    """
    if jobs is not None and jobs > 1:
        if scheduler is not None or (workers is not None and workers != jobs):
            raise EngineUsageError(
                f"--jobs {jobs} is the older name of --workers {jobs}; give only one of "
                "--jobs, --workers and --scheduler"
            )
        workers = jobs
    if workers is not None and scheduler is not None:
        raise EngineUsageError(
            "--workers starts a local cluster and --scheduler uses an existing one; pick one"
        )
    if workers is None and scheduler is None:
        return LocalEngine()
    try:
        return make_engine(workers, scheduler, say=say)
    except (EngineUnavailable, EngineError) as e:
        raise EngineUsageError(str(e)) from None


def shard_progress(
    echo: Callable[[str], None], every: float = 5.0
) -> Callable[[str, int, int, float | None], None]:
    """An ``on_progress`` for an engine: ``STEP: shards D/T, ETA S s`` on stderr, at most
    every ``every`` seconds per step, and always for the first and the last shard."""
    last: dict[str, float] = {}

    def show(step: str, done: int, total: int, eta: float | None) -> None:
        now = time.monotonic()
        if done not in (1, total) and now - last.get(step, 0.0) < every:
            return
        last[step] = now
        tail = f", ETA {eta:.0f} s" if eta is not None and done < total else ""
        echo(f"{step}: shards {done}/{total}{tail}")

    return show
