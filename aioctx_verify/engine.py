"""Shards and the engines that run them: in this process, or on a Dask cluster.

A campaign step is cut into :class:`Shard` s: each names its step, its position
(``index``) in the step's list, a module-level function and its arguments, and a deadline.
A shard is a pure function of those arguments (seed, budget share, which cell or which
programs), so it gives the same value wherever it runs.  An engine runs a list of shards
and yields one :class:`ShardResult` per shard, in whatever order they finish;
:func:`run_shards` collects them into an :class:`EngineRun` keyed by index, so the merged
result of a step never depends on the number of workers or the order of completion.

Two engines:

* :class:`LocalEngine` (the default): the shards one after another in the calling thread,
  as the campaign always ran; nothing is imported from Dask.  A deadline is enforced with
  ``SIGALRM`` when the engine runs in the main thread (the shard is interrupted by an
  exception and its value discarded), and only reported afterwards elsewhere.
* :class:`DaskEngine`: a ``distributed.Client`` on a ``LocalCluster`` of N single-thread
  worker processes it starts (``--workers N``), or on an existing cluster (``--scheduler
  tcp://HOST:PORT`` or a scheduler file).  At most one shard per worker thread is in
  flight, so a shard's deadline counts from when it starts.

Faults on Dask: a worker that dies mid-shard (killed, out of memory) makes the scheduler
run the shard again on another worker, and the scheduler's count of such losses marks the
result as *retried* (its value is stored once, so nothing is counted twice); a shard that
lost more workers than the scheduler allows is resubmitted by the engine, up to
``retries`` times, then reported ``lost``.  A shard past its deadline is cancelled, its
worker restarted (a running Python thread cannot be stopped otherwise) and the shard
reported ``deadline``.  Ctrl-C (KeyboardInterrupt) cancels every outstanding shard and the
run returns what finished, marked ``interrupted``.

Dask is an optional extra: ``pip install 'aioctx-verify[dask]'``.  Without it,
:func:`make_engine` raises :class:`EngineUnavailable`, whose message is the one line the
command prints.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

__all__ = [
    "DASK_INSTALL",
    "DaskEngine",
    "Engine",
    "EngineError",
    "EngineRun",
    "EngineUnavailable",
    "LocalEngine",
    "Shard",
    "ShardProgress",
    "ShardResult",
    "ShardStatus",
    "make_engine",
    "run_shards",
]

#: The install command the missing-extra message names.
DASK_INSTALL = "pip install 'aioctx-verify[dask]'"

ShardStatus = Literal["ok", "error", "deadline", "lost", "cancelled"]
"""How a shard ended: ``ok`` (its value is in), ``error`` (its function raised),
``deadline`` (cut off at its deadline), ``lost`` (its workers kept dying, retries spent),
``cancelled`` (never ran, or cancelled by a stop or Ctrl-C)."""

#: ``(step, shards done, shards in all, seconds left estimated or None)``.
ShardProgress = Callable[[str, int, int, "float | None"], None]


#: What a timed-out wait raises: before Python 3.11, asyncio's and concurrent.futures'
#: TimeoutError are classes of their own (Dask's waits raise asyncio's on 3.10).
_TIMEOUTS: tuple[type[BaseException], ...] = (
    TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError,
)
#: What a failed connection to a scheduler raises.
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, *_TIMEOUTS)


class EngineUnavailable(RuntimeError):
    """The Dask extra is not installed (the message says how to install it)."""


class EngineError(RuntimeError):
    """The cluster cannot be reached or started (the message names the address or file)."""


@dataclass(frozen=True)
class Shard:
    """One unit of a step: ``fn(*args)`` at ``index`` of the step's list.

    ``fn`` must be a module-level function (workers import it by name, or receive it by
    value when its module was registered with ``cloudpickle.register_pickle_by_value``) and
    its value and arguments must pickle.  ``deadline``: seconds the shard may run before
    it is cut off (None: no deadline).  ``label``: a few words for progress lines.
    """

    step: str
    index: int
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    deadline: float | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return f"{self.step}#{self.index}"


@dataclass(frozen=True)
class ShardResult:
    """What became of one shard.

    ``seconds``: the shard's own run time, measured where it ran; ``wall``: from when the
    engine handed it out to when the engine saw its result (the difference is the
    scheduling overhead).  ``attempts``: runs started, more than one when a worker died
    under it or the engine resubmitted it; the value is still counted once.
    """

    step: str
    index: int
    status: ShardStatus
    value: Any = None
    error: str = ""
    seconds: float = 0.0
    wall: float = 0.0
    attempts: int = 1
    worker: str = ""
    label: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retried(self) -> bool:
        return self.attempts > 1

    @property
    def name(self) -> str:
        return f"{self.step}#{self.index}"

    @property
    def problem(self) -> str:
        """``LABEL: shard STATUS: the last line of its error`` (for a verdict's detail)."""
        lines = [ln for ln in self.error.strip().splitlines() if ln.strip()]
        return f"{self.label}: shard {self.status}: {lines[-1] if lines else '(no message)'}"


@dataclass
class EngineRun:
    """The results of one :func:`run_shards`, keyed by shard index."""

    step: str
    total: int
    results: dict[int, ShardResult] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C cancelled what was outstanding
    stopped: bool = False  # should_stop() ended it: shards left were never started

    def ordered(self) -> list[ShardResult]:
        """Every result, in shard order."""
        return [self.results[i] for i in sorted(self.results)]

    @property
    def complete(self) -> bool:
        """Every shard ran to an end of its own (ok, error, deadline or lost)."""
        return len(self.results) == self.total and not any(
            r.status == "cancelled" for r in self.results.values()
        )

    @property
    def ran(self) -> int:
        """Shards that ran (not cancelled)."""
        return sum(1 for r in self.results.values() if r.status != "cancelled")

    def answered(self, upto: int | None = None) -> list[ShardResult]:
        """The results with a value (``ok``), in shard order (up to index ``upto``)."""
        return [r for r in self.ordered() if r.ok and (upto is None or r.index <= upto)]

    def problem(self, upto: int | None = None) -> str:
        """``LABEL: shard STATUS: the last line of its error`` for the first shard (up to
        index ``upto``) that ran and gave no value; ``""`` when there is none."""
        for r in self.ordered():
            if r.status not in ("ok", "cancelled") and (upto is None or r.index <= upto):
                return r.problem
        return ""

    @property
    def retried(self) -> list[ShardResult]:
        return [r for r in self.ordered() if r.retried]

    def with_status(self, status: ShardStatus) -> list[ShardResult]:
        return [r for r in self.ordered() if r.status == status]

    def notes(self) -> list[str]:
        """One line per shard that did not simply run once and answer."""
        out = []
        for r in self.ordered():
            what = f"shard {r.name}" + (f" ({r.label})" if r.label else "")
            if r.status == "deadline":
                out.append(f"{what} cut off at its deadline: {r.error}")
            elif r.status == "lost":
                out.append(f"{what} lost: {r.error}")
            elif r.status == "error":
                out.append(f"{what} raised: {r.error.splitlines()[-1] if r.error else '?'}")
            if r.retried and r.status in ("ok", "error"):
                out.append(f"{what} retried: {r.attempts} attempts, its result counted once")
        return out


# ----------------------------------------------------------------------------------------
# Running one shard (here, or on a worker)
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Outcome:
    status: Literal["ok", "error", "deadline"]
    value: Any
    error: str
    seconds: float
    worker: str


class _DeadlinePassed(BaseException):
    """Raised into a shard by the in-process alarm (a BaseException: ``except Exception``
    in the shard's code does not swallow it)."""


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _execute(shard: Shard) -> _Outcome:
    """Run ``shard``; an exception is an ``error`` value, never a failed task."""
    t0 = time.perf_counter()
    try:
        value = shard.fn(*shard.args)
    except Exception as e:
        tb = traceback.format_exc(limit=8)
        return _Outcome("error", None, f"{tb.rstrip()}\n{type(e).__name__}: {e}",
                        time.perf_counter() - t0, _where())
    return _Outcome("ok", value, "", time.perf_counter() - t0, _where())


def _execute_blob(blob: bytes) -> bytes:
    """Worker side of :class:`DaskEngine`: the shard arrives cloudpickled (so functions of
    modules registered by value travel with it), and its outcome goes back cloudpickled, by
    this function: pickled once, and a value that cannot be is the shard's error."""
    import cloudpickle

    shard = cloudpickle.loads(blob)
    if not isinstance(shard, Shard):
        raise TypeError(f"expected a Shard, got {type(shard).__name__}")
    out = _execute(shard)
    try:
        return bytes(cloudpickle.dumps(out))
    except Exception as e:
        return bytes(cloudpickle.dumps(_Outcome(
            "error", None,
            f"{shard.name}: its value ({type(out.value).__name__}) does not pickle: "
            f"{type(e).__name__}: {e}; a shard must return plain data",
            out.seconds, out.worker)))


@contextlib.contextmanager
def _alarm(deadline: float | None) -> Iterator[Callable[[], bool]]:
    """Interrupt the block after ``deadline`` seconds (main thread, POSIX only); yields a
    poll telling whether the alarm fired.  The alarm repeats every half second until the
    block ends, in case the code under it catches the first one."""
    fired = [False]
    usable = (
        deadline is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable or deadline is None:
        yield lambda: False
        return
    active = [True]

    def handler(_sig: int, _frame: FrameType | None) -> None:
        if active[0]:
            fired[0] = True
            raise _DeadlinePassed

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(1e-3, deadline), 0.5)
    try:
        yield lambda: fired[0]
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------------------
# Engines
# ----------------------------------------------------------------------------------------
class Engine:
    """Runs shards and yields their results in completion order (see :func:`run_shards`).

    ``on_progress`` (set by the command) hears ``(step, done, total, eta_seconds)`` after
    every shard of every :func:`run_shards`.
    """

    name = "engine"
    #: Shards run at once (worker threads).
    workers = 1
    #: Where the cluster's dashboard is, when it has one.
    dashboard: str | None = None

    def __init__(self) -> None:
        self.on_progress: ShardProgress | None = None

    def imap(
        self, shards: Sequence[Shard], should_stop: Callable[[], bool] | None = None
    ) -> Generator[ShardResult, None, None]:
        """One result per shard, as each finishes.  ``should_stop`` is polled between
        shards: once true no new shard starts (those left are yielded ``cancelled``) and
        the running ones finish.  A KeyboardInterrupt cancels the running ones too."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Release the engine's resources (the cluster it started)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cancelled(shard: Shard, why: str) -> ShardResult:
    return ShardResult(shard.step, shard.index, "cancelled", error=why, attempts=0,
                       label=shard.label)


class LocalEngine(Engine):
    """Every shard in this process and thread, one after another (the default)."""

    name = "local"

    def imap(
        self, shards: Sequence[Shard], should_stop: Callable[[], bool] | None = None
    ) -> Generator[ShardResult, None, None]:
        stop = should_stop or (lambda: False)
        todo = deque(shards)
        while todo:
            if stop():
                for s in todo:
                    yield _cancelled(s, "stopped before it started")
                return
            shard = todo.popleft()
            t0 = time.perf_counter()
            try:
                with _alarm(shard.deadline) as fired:
                    out = _execute(shard)
            except _DeadlinePassed:
                out = _Outcome("deadline", None, "", time.perf_counter() - t0, _where())
            except KeyboardInterrupt:
                yield _cancelled(shard, "interrupted (Ctrl-C)")
                for s in todo:
                    yield _cancelled(s, "interrupted (Ctrl-C)")
                raise
            wall = time.perf_counter() - t0
            status: ShardStatus = out.status
            error = out.error
            if status == "deadline" or fired():
                status = "deadline"
                error = f"ran past its {shard.deadline:g} s deadline; cut off, value discarded"
            elif shard.deadline is not None and wall > shard.deadline:
                # Not in the main thread: no alarm could cut it off; say so all the same.
                status = "deadline"
                error = (f"finished after {wall:.1f} s, past its {shard.deadline:g} s "
                         "deadline (not cut off: not the main thread); value discarded")
            yield ShardResult(
                shard.step, shard.index, status,
                value=out.value if status == "ok" else None, error=error,
                seconds=out.seconds, wall=wall, worker=out.worker, label=shard.label,
            )


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise EngineUnavailable(
            f"Dask is not installed: --workers and --scheduler need it; "
            f"run {DASK_INSTALL}"
        ) from None
    return distributed


def _suspicious(keys: list[str], dask_scheduler: Any = None) -> dict[str, int]:
    """On the scheduler: how many workers died while running each task."""
    tasks = getattr(dask_scheduler, "tasks", {})
    return {k: int(getattr(tasks.get(k), "suspicious", 0) or 0) for k in keys}


def _ignore_sigint_on_worker() -> None:
    """Worker setup: Ctrl-C in the terminal is the client's to handle, not the workers'."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class _Flight:
    shard: Shard
    key: str
    submitted: float
    attempts: int  # runs started before this submission (engine resubmissions)


class DaskEngine(Engine):
    """Shards on a Dask cluster: one it starts, or one that exists.

    Args:
        workers: start a ``LocalCluster`` of this many single-thread worker processes.
        address: ``tcp://HOST:PORT`` of an existing scheduler.
        scheduler_file: the JSON file ``dask scheduler --scheduler-file`` wrote.
        retries: resubmissions of a shard whose workers kept dying (beyond the scheduler's
            own reruns).
        say: where to print the dashboard line when a cluster is started.

    Raises:
        EngineUnavailable: the Dask extra is missing.
        EngineError: none or several of the three ways given, or the cluster cannot be
            reached.
    """

    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        scheduler_file: str | Path | None = None,
        retries: int = 2,
        say: Callable[[str], None] | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        given = [x is not None for x in (workers, address, scheduler_file)]
        if sum(given) != 1:
            raise EngineError("give exactly one of workers, address or scheduler_file")
        distributed = _import_distributed()
        self._distributed = distributed
        self.retries = retries
        self._cluster: Any = None
        self._started = workers is not None
        try:
            if workers is not None:
                if workers < 1:
                    raise EngineError(f"workers must be at least 1, got {workers}")
                import logging

                import dask

                # The workers' statistical profiler samples the running thread's stack
                # every 10 ms: on the controlled scheduler's deep greenlet stacks that
                # doubled a shard's run time.  The nannies hand this config to the workers.
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    self._cluster = distributed.LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=":0", silence_logs=logging.ERROR,
                    )
                self.client = distributed.Client(self._cluster, timeout=connect_timeout)
                self._where = f"a local cluster of {workers} worker process(es)"
            elif scheduler_file is not None:
                path = Path(scheduler_file)
                if not path.is_file():
                    raise EngineError(
                        f"scheduler file {path} does not exist; start the scheduler with "
                        f"dask scheduler --scheduler-file {path}, or pass tcp://HOST:PORT"
                    )
                self.client = distributed.Client(scheduler_file=str(path),
                                                 timeout=connect_timeout)
                self._where = f"the cluster of scheduler file {path}"
            else:
                self.client = distributed.Client(address, timeout=connect_timeout)
                self._where = f"the cluster at {address}"
        except _CONNECT_ERRORS as e:
            self.close()
            what = address or scheduler_file or "a local cluster"
            raise EngineError(
                f"cannot reach the Dask scheduler {what}: {e}; check the address and that "
                "the scheduler runs"
            ) from None
        if self._started:
            self.client.register_plugin(_sigint_plugin(distributed), name="aioctx-sigint")
        self.dashboard = self._dashboard()
        self.workers = max(1, sum(self.client.nthreads().values()))
        if say is not None and self._started:
            say(f"engine: Dask {self._where}; dashboard: {self.dashboard or 'none'}")

    def _dashboard(self) -> str | None:
        try:
            info = self.client.scheduler_info()
        except Exception:
            return None
        if "dashboard" not in info.get("services", {}):
            return None
        return str(self.client.dashboard_link)

    def describe(self) -> str:
        return f"dask ({self._where}, {self.workers} worker thread(s))"

    def _submit(self, shard: Shard, attempts: int) -> tuple[Any, _Flight]:
        import cloudpickle

        key = f"aioctx-{shard.step}-{shard.index}-{attempts}-{os.urandom(4).hex()}"
        fut = self.client.submit(
            _execute_blob, cloudpickle.dumps(shard), key=key, pure=False, retries=0
        )
        return fut, _Flight(shard, key, time.perf_counter(), attempts)

    def _cut_off(self, fut: Any, flight: _Flight) -> None:
        """Cancel an overdue shard and restart the worker still running it."""
        busy: list[str] = []
        with contextlib.suppress(Exception):
            busy = [w for w, keys in self.client.processing().items() if flight.key in keys]
        with contextlib.suppress(Exception):
            fut.cancel()
        if busy and self._started:
            with contextlib.suppress(Exception):
                self.client.restart_workers(busy, timeout=60, raise_for_error=False)
        elif busy:
            # A cluster we did not start: restart only with a nanny (dask worker's default).
            with contextlib.suppress(Exception):
                self.client.restart_workers(busy, timeout=60, raise_for_error=False)

    def imap(
        self, shards: Sequence[Shard], should_stop: Callable[[], bool] | None = None
    ) -> Generator[ShardResult, None, None]:
        distributed = self._distributed
        stop = should_stop or (lambda: False)
        todo: deque[tuple[Shard, int]] = deque((s, 0) for s in shards)
        flying: dict[Any, _Flight] = {}
        window = max(1, self.workers)
        try:
            while todo or flying:
                if todo and stop():
                    for s, _ in todo:
                        yield _cancelled(s, "stopped before it started")
                    todo.clear()
                while todo and len(flying) < window:
                    shard, attempts = todo.popleft()
                    fut, flight = self._submit(shard, attempts)
                    flying[fut] = flight
                if not flying:
                    break
                now = time.perf_counter()
                due = [f.submitted + f.shard.deadline - now
                       for f in flying.values() if f.shard.deadline is not None]
                tick = max(0.01, min([0.5, *due]))
                try:
                    done, _ = distributed.wait(list(flying), timeout=tick,
                                               return_when="FIRST_COMPLETED")
                except _TIMEOUTS:
                    done = set()
                finished = [f for f in done if f in flying]
                lost = {}
                if finished:
                    with contextlib.suppress(Exception):
                        lost = self.client.run_on_scheduler(
                            _suspicious, [flying[f].key for f in finished])
                for fut in finished:
                    flight = flying.pop(fut)
                    result = self._collect(fut, flight, int(lost.get(flight.key, 0)), todo)
                    with contextlib.suppress(Exception):
                        fut.release()
                    if result is not None:
                        yield result
                now = time.perf_counter()
                for fut, flight in list(flying.items()):
                    dl = flight.shard.deadline
                    if dl is not None and now - flight.submitted > dl and not fut.done():
                        flying.pop(fut)
                        self._cut_off(fut, flight)
                        yield ShardResult(
                            flight.shard.step, flight.shard.index, "deadline",
                            error=f"ran past its {dl:g} s deadline; cancelled and its "
                            "worker restarted",
                            wall=now - flight.submitted, attempts=flight.attempts + 1,
                            label=flight.shard.label,
                        )
        except KeyboardInterrupt:
            left = list(flying.values())
            self._cancel(flying)
            for flight in left:
                yield _cancelled(flight.shard, "interrupted (Ctrl-C)")
            for s, _ in todo:
                yield _cancelled(s, "interrupted (Ctrl-C)")
            raise
        finally:  # the caller stopped iterating early: nothing keeps running for it
            self._cancel(flying)

    def _cancel(self, flying: dict[Any, _Flight]) -> None:
        if flying:
            with contextlib.suppress(Exception):
                self.client.cancel(list(flying))
            flying.clear()

    def _collect(
        self, fut: Any, flight: _Flight, lost: int, todo: deque[tuple[Shard, int]]
    ) -> ShardResult | None:
        """The result of a finished future, or None when it was resubmitted."""
        shard = flight.shard
        attempts = flight.attempts + 1 + lost
        wall = time.perf_counter() - flight.submitted
        if fut.status == "finished":
            import cloudpickle

            out: _Outcome = cloudpickle.loads(fut.result())
            return ShardResult(
                shard.step, shard.index, out.status,
                value=out.value if out.status == "ok" else None, error=out.error,
                seconds=out.seconds, wall=wall, attempts=attempts, worker=out.worker,
                label=shard.label,
            )
        if fut.status == "cancelled":
            return ShardResult(shard.step, shard.index, "cancelled",
                               error="cancelled on the cluster", wall=wall,
                               attempts=attempts, label=shard.label)
        try:
            exc = fut.exception()
        except Exception as e:  # the exception did not unpickle
            exc = e
        killed = type(exc).__name__ == "KilledWorker"
        if killed and flight.attempts < self.retries:
            todo.appendleft((shard, attempts))
            return None
        why = f"{type(exc).__name__}: {exc}"
        return ShardResult(shard.step, shard.index, "lost" if killed else "error",
                           error=why, wall=wall, attempts=attempts, label=shard.label)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=10)
            self._cluster = None


def _sigint_plugin(distributed: Any) -> Any:
    """A worker plugin whose setup (on the worker's main thread, also after a restart)
    makes the worker process ignore SIGINT: a terminal's Ctrl-C reaches the whole process
    group, and the workers of a local cluster would die of it."""

    def setup(_self: Any, worker: Any) -> None:
        _ignore_sigint_on_worker()

    cls = type("IgnoreSigint", (distributed.WorkerPlugin,), {"setup": setup})
    return cls()


# ----------------------------------------------------------------------------------------
# Making an engine, running a step
# ----------------------------------------------------------------------------------------
def make_engine(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    say: Callable[[str], None] | None = None,
) -> Engine:
    """The engine the flags ask for: none, :class:`LocalEngine`; ``workers``, a local Dask
    cluster; ``scheduler``, an existing one (``tcp://...`` or another URL is an address,
    anything else a scheduler file, which must exist).

    Raises:
        EngineUnavailable: Dask flags without the Dask extra.
        EngineError: both flags, a bad number, a missing scheduler file, no scheduler.
    """
    if workers is not None and scheduler is not None:
        raise EngineError("--workers starts a cluster and --scheduler uses one; pick one")
    if workers is None and scheduler is None:
        return LocalEngine()
    if workers is not None and workers < 1:
        raise EngineError(f"--workers must be at least 1, got {workers}")
    if scheduler is not None and "://" not in scheduler and not Path(scheduler).is_file():
        raise EngineError(
            f"--scheduler {scheduler}: no such scheduler file; pass tcp://HOST:PORT or the "
            "file dask scheduler --scheduler-file wrote"
        )
    _import_distributed()
    if workers is not None:
        return DaskEngine(workers, say=say)
    assert scheduler is not None
    if "://" in scheduler:
        return DaskEngine(address=scheduler, say=say)
    return DaskEngine(scheduler_file=scheduler, say=say)


def run_shards(
    engine: Engine,
    step: str,
    shards: Sequence[Shard],
    *,
    should_stop: Callable[[], bool] | None = None,
    on_result: Callable[[ShardResult, int, int], None] | None = None,
) -> EngineRun:
    """Run ``shards`` on ``engine`` and merge their results by index.

    ``on_result(result, done, total)`` hears every result as it arrives; the engine's
    ``on_progress`` hears ``(step, done, total, eta)``, the estimate being the time spent
    so far over the shards done, times the shards left (so the engine's width is in it).  A
    KeyboardInterrupt returns what finished with ``interrupted`` set (the caller decides
    whether to go on).

    Raises:
        ValueError: two shards with the same index.
    """
    indexes = [s.index for s in shards]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"{step}: shard indexes repeat; each shard needs its own index")
    run = EngineRun(step, len(shards))
    t0 = time.perf_counter()
    done = 0
    it = engine.imap(shards, should_stop)
    try:
        for r in it:
            if r.index in run.results:  # never expected: a result is taken once
                continue
            run.results[r.index] = r
            if r.status == "cancelled":
                run.stopped = True
                continue
            done += 1
            if on_result is not None:
                on_result(r, done, len(shards))
            if engine.on_progress is not None:
                spent = time.perf_counter() - t0
                left = len(shards) - done
                eta = spent / done * left if done else None
                engine.on_progress(step, done, len(shards), eta)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        it.close()
    for s in shards:  # whatever the engine could not report
        run.results.setdefault(s.index, _cancelled(s, "interrupted (Ctrl-C)"))
    run.seconds = time.perf_counter() - t0
    return run
