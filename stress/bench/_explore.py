"""The controlled scheduler's benchmark: its speed, its cost over the real platform, and its
time to the first failure against frontrun's on the same small buggy programs.

``aioctx-verify bench --explore`` appends these rows to the 17 of :mod:`stress.bench._loop`:

* ``explore_steps_per_s``: scheduling points per second of a random exploration of the corpus
  program ``bh_cross_thread`` (impl's IOThread, a BH scheduled from another thread, a
  condition wait), against the same program's platform operations per second on impl's
  :class:`~impl.RealPlatform` (operations counted by a counting proxy in separate, untimed
  runs; the rate divides that count by the median plain run).  ``ratio`` is the
  per-operation slowdown of the controlled platform.
* ``explore_schedules_per_s``: complete runs per second of a random exploration of a small
  *safe* program that both explorers can express (``locked_counter``: two threads increment
  a counter under one lock, so no run stops early), against frontrun's ``random`` strategy
  on the same program.  Needs frontrun.
* ``explore_overhead``: the wall time of one run of ``bh_cross_thread`` under the controlled
  platform (one random schedule) against one plain run on a fresh ``RealPlatform``, sampled
  alternately; ``ratio`` = controlled / real.  The target is informational: it says what we
  consider a reasonable price for determinism, not a competitor's figure.
* ``ttff_<program>``: time to first failure, for every buggy program both can express:
  ``lost_update`` (read-modify-write of a shared counter), ``abba_deadlock`` (two locks in
  opposite orders) and ``notify_order`` (aio_notify's handshake with the waker's two steps
  swapped, a lost wake-up even under sequential consistency).  Ours is :func:`stress.explore`
  with the ``random`` strategy, shrinking excluded; the peer is frontrun's ``explore`` (the
  faster of its ``dpor`` default and its ``random`` strategy, stop at the first failure,
  ``reproduce_on_failure=0``), run as ``frontrun python <driver>`` in a child process on the
  equivalent program written with plain attributes and ``threading`` locks.  Both sides get
  the same budget (at most ``budget_schedules`` runs, ``budget_seconds`` of wall time); a
  search that ends without finding the bug counts as an infinite time.  Each repetition
  runs ``seeds`` searches per program and side (fresh seeds every repetition; frontrun's
  DPOR is deterministic and is simply timed as often); a repetition's figure is their median,
  in milliseconds, and the row the median of the repetitions.

* notes ``strategies``: time and schedules to the first failure of every strategy of
  :data:`STRATEGY_TTFF` on every buggy program of :data:`STRATEGY_PROGRAMS` (the three
  above and ``request_wakeup``, a three-thread lost wake-up two preemptions deep written for
  this table, not taken from the corpus), the median over ``seeds`` searches, each bounded
  by ``strategy_schedules`` runs (work, not time: a search that ends without the bug counts
  as not found).  DFS and DPOR (at bound 2) are deterministic and searched once.

* ``dpor_<program>``: schedules (runs, sleep-set-blocked ones included) that
  :class:`~stress.controlled.DPORStrategy` at preemption bound 2 needs to exhaust each safe
  corpus program of :data:`DPOR_PROGRAMS`, against a DFS at the same bound without state
  pruning (every schedule within the bound); target: at most a fifth.  The notes add DFS
  with pruning and unbounded DPOR (where it exhausts within :data:`DPOR_UNBOUNDED_CAP`
  schedules), for information.  Counts, not times: computed once per process, the same every
  repetition.  ``stop_the_world`` is left out: neither search exhausts it at bound 2
  within the cap.

* ``ttff_dpor_<program>``: schedules :class:`~stress.controlled.DPORStrategy` (bound 2)
  needs to reach the first failure of each program of :data:`TTFF_PROGRAMS`, against the
  executions frontrun's DPOR (its default preemption bound, 2) needs, the median of its
  searches; target: no more.  Both are deterministic: counts, not times.

* ``bound3_notify_rounds``: seconds our DPOR needs to exhaust :data:`BOUND3_PROGRAM` (the
  aio_notify handshake done right, in rounds, a poller and two wakers, written for this row)
  at preemption bound 3, against frontrun's DPOR at ``preemption_bound=3`` on the same
  program, given ``bound3_frontrun_seconds`` (150 s; when it does not finish, its figure is
  that time, a lower bound).  The target is absolute, on ours: at most 10 s.  The notes
  give both sides' schedule counts and whether frontrun finished.

The rows are opt-in (``--explore``) so that ``aioctx-verify bench`` keeps its 17 rows.

Not compared: the weak-memory programs (``notify_no_fence_tso``/``_pso``, ``mp_no_wmb_pso``).
frontrun runs real CPython threads, whose memory is sequentially consistent, and has no
store-buffer model, so it cannot express those bugs at all; the SC ``notify_order`` is the
handshake bug both can express.

Why random and not PCT for our side: ``random`` is :func:`stress.explore`'s default and has
no parameter to fit to the bug (PCT's depth ``d`` must be chosen), and on these two-thread
programs, whose runs have 10-30 decisions and whose bugs need one or two preemptions, a
uniform choice at every decision finds them in a median of 2-15 runs.  The notes give our
time with the other strategy too.

Time to first failure is measured around the search only, on both sides: the frontrun child
times each ``frontrun.explore`` call itself (interpreter start-up and imports excluded), and
each side first runs one untimed search per program (frontrun loads its DPOR engine lazily,
we warm our caches).  Shrinking (ours) and counterexample reproduction (frontrun) are
post-processing of a failure already found and are excluded from the figure; the notes give
our time with shrinking for information.

frontrun is optional: it is looked up lazily (never imported into this process: its
cooperative lock patching must not touch the rest of the bench) and run in a child process
in its own session, killed as a group if it overruns.  When it is missing, fails or times
out, its rows keep ``ours`` and carry a NaN peer (``null`` in JSON), ``met`` is False, and
the notes say why.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aioctx_verify.impl import Fence, Ordering, RealPlatform, ThreadId
from aioctx_verify.impl._platform import (
    AtomicCell,
    Condition,
    Mutex,
    Platform,
    Poller,
    RawNotifier,
    ThreadHandle,
    Tracer,
)

from ..controlled import ControlledPlatform, DFSStrategy, DPORStrategy, RandomStrategy
from ..explore import Budget, Program, corpus_by_name, explore, run_schedule
from ._loop import BenchError, BenchResult, Target

__all__ = [
    "EXPLORE_BENCHMARK_NAMES",
    "FRONTRUN_DRIVER",
    "LOCKED_COUNTER",
    "NOTIFY_ORDER",
    "NOTIFY_ROUNDS",
    "REQUEST_WAKEUP",
    "STRATEGY_PROGRAMS",
    "STRATEGY_TTFF",
    "TTFF_PROGRAMS",
    "ExploreBench",
    "ExploreSizes",
    "FrontrunReport",
    "frontrun_version",
    "run_explore_benchmarks",
    "run_frontrun",
]

#: The corpus program whose steps/s and overhead are measured (impl code, several threads).
THROUGHPUT_PROGRAM = "bh_cross_thread"
#: The buggy programs compared with frontrun, in row order.
TTFF_PROGRAMS: tuple[str, ...] = ("lost_update", "abba_deadlock", "notify_order")
#: Every buggy program of the per-strategy table, in order.
STRATEGY_PROGRAMS: tuple[str, ...] = (*TTFF_PROGRAMS, "request_wakeup")
#: The strategies of the per-strategy table (``pct`` at its default depth 3).
STRATEGY_TTFF: tuple[str, ...] = (
    "random", "pct", "pct-auto", "portfolio", "dfs", "conflict", "dpor",
)
#: Deterministic strategies: one search each in the per-strategy table.
_DETERMINISTIC = ("dfs", "dpor")
#: The safe corpus programs whose exhaustion at bound 2 DPOR and DFS are compared on.
DPOR_PROGRAMS: tuple[str, ...] = (
    "atomic_increment", "notify_no_fence_sc", "notify_fenced_tso", "notify_fenced_pso",
    "mp_no_wmb_tso", "mp_wmb_pso", "iothread_acquire", "bh_cross_thread",
    "bh_cross_thread_tso", "timer_virtual_time",
)
#: Preemption bound of the DPOR rows, and the cap on each of their searches.
DPOR_BOUND = 2
DPOR_CAP = 20_000
#: Cap of the unbounded DPOR search of the notes (the impl programs do not exhaust).
DPOR_UNBOUNDED_CAP = 300
#: The bound-3 row: the safe protocol program DPOR exhausts at preemption bound 3, and the
#: issue's target for it (frontrun's DPOR does not finish that bound in 150 s).
BOUND3 = 3
BOUND3_PROGRAM = "notify_rounds"
BOUND3_TARGET_S = 10.0
#: frontrun's strategies tried on each program; the faster one is the peer.
FRONTRUN_STRATEGIES: tuple[str, ...] = ("dpor", "random")

EXPLORE_BENCHMARK_NAMES: tuple[str, ...] = (
    "explore_steps_per_s",
    "explore_schedules_per_s",
    "explore_overhead",
    *(f"ttff_{name}" for name in TTFF_PROGRAMS),
    *(f"ttff_dpor_{name}" for name in TTFF_PROGRAMS),
    *(f"dpor_{name}" for name in DPOR_PROGRAMS),
    f"bound{BOUND3}_{BOUND3_PROGRAM}",
)

#: The line of the frontrun child's stdout that carries its figures.
_MARK = "AIOCTX-FRONTRUN-RESULT "


# ---------------------------------------------------------------------------------------
# Our programs (the ones the corpus does not have)
# ---------------------------------------------------------------------------------------
def _notify_order(p: ControlledPlatform) -> None:
    """aio_notify's handshake with the waker's steps swapped: it checks ``notify_me`` before
    publishing the work.  Between the two the sleeper can publish ``notify_me``, see no work
    and go to sleep, and the waker, having seen ``notify_me == 0``, kicks nobody: a lost
    wake-up under sequential consistency (no fence can fix the order)."""
    notify_me = p.atomic(0, "notify_me")
    work = p.atomic(0, "work")
    slept: list[bool] = []
    kicked: list[bool] = []

    def sleeper() -> None:
        notify_me.store(1)
        if not work.load():
            slept.append(True)  # would block in poll until kicked

    def waker() -> None:
        if notify_me.load():
            kicked.append(True)
        work.store(1)

    a = p.start_thread(sleeper, "sleeper")
    b = p.start_thread(waker, "waker")
    a.join()
    b.join()
    assert not (slept and not kicked), "lost wake-up: the sleeper slept and nobody kicked it"


def _locked_counter(p: ControlledPlatform) -> None:
    """Two threads increment a counter with load + store under one lock: always 2."""
    m = p.mutex("m")
    x = p.atomic(0, "x")

    def inc() -> None:
        with m:
            v = x.load()
            x.store(v + 1)

    ts = [p.start_thread(inc, f"inc{i}") for i in range(2)]
    for t in ts:
        t.join()
    assert x.load() == 2, f"x == {x.load()} after two locked increments"


def _request_wakeup(p: ControlledPlatform) -> None:
    """A worker serves requests from two clients and sleeps on a condition when it has
    handled every one queued; a client kicks it only when it saw it idle, and it looks
    *before* publishing its request, so that the kick can go outside the lock.  A client
    that looked while the worker was awake, held until the worker has gone back to sleep,
    publishes its last request and kicks nobody: the worker sleeps forever (two
    preemptions: the worker is started and asleep before the clients start).  The worker
    copies each request out field by field, so the window in which a client must be held
    spans the worker's whole iteration."""
    fields, rounds = 6, 3
    m = p.mutex("m")
    wake = p.condition(m)
    ready = p.condition(m)
    started = p.atomic(0, "started")
    queued = p.atomic(0, "queued")
    idle = p.atomic(0, "idle")
    reqs = [p.atomic(0, f"req{i}") for i in range(2)]

    def worker() -> None:
        with m:
            started.store(1)
            ready.notify()
        handled = 0
        while handled < 2 * rounds:
            with m:
                idle.store(1)
                if queued.load() == handled:
                    wake.wait()
                idle.store(0)
                now = queued.load()
            for _ in range(now - handled):  # copy each new request out
                for f in range(fields):
                    reqs[f % 2].load()
            handled = now

    def client(i: int) -> None:
        for _ in range(rounds):
            for f in range(fields):  # fill in the request
                reqs[i].store(f)
            sleeping = idle.load()  # BUG: looked before publishing
            queued.fetch_add(1)
            if sleeping:
                with m:
                    wake.notify()

    w = p.start_thread(worker, "worker")
    with m:
        while not started.load():
            ready.wait()
    clients = [p.start_thread(functools.partial(client, i), f"client{i}") for i in range(2)]
    for t in (w, *clients):
        t.join()


#: notify_rounds' size: one padding field, one round per waker, two wakers.
ROUNDS_FIELDS, ROUNDS_ROUNDS, ROUNDS_WAKERS = 1, 1, 2


def _notify_rounds(p: ControlledPlatform, look_first: bool = False) -> None:
    """aio_notify's handshake done right, in rounds: a poller and two wakers, safe under
    sequential consistency.  The poller announces it may sleep (``notify_me = 1``), reads the
    kick count and then the work count; unchanged work means it would sleep, and it stops
    there.  A waker fills in its request, counts it under the lock and then, if the poller
    announced, kicks under the lock.  Any work published after the poller's look is followed
    by a kick after its look, so a poller that slept with work pending was kicked.  It has
    no condition waits, so frontrun's DPOR can run it too (written for this row, not taken
    from the corpus).  ``look_first`` swaps a waker's two steps (it looks at ``notify_me``
    before counting its request): the lost wake-up, for the tests."""
    fields, rounds, wakers = ROUNDS_FIELDS, ROUNDS_ROUNDS, ROUNDS_WAKERS
    m = p.mutex("m")
    notify_me = p.atomic(0, "notify_me")
    work = p.atomic(0, "work")
    kicks = p.atomic(0, "kicks")
    reqs = [p.atomic(0, f"req{i}") for i in range(wakers)]
    slept: list[tuple[int, int]] = []

    def poller() -> None:
        handled = 0
        for _ in range(wakers * rounds + 1):
            notify_me.store(1)
            k = kicks.load()
            w = work.load()
            if w == handled:
                slept.append((w, k))  # would sleep in poll until kicked
                return
            notify_me.store(0)
            for _ in range(w - handled):  # copy the new requests out
                for f in range(fields):
                    reqs[f % wakers].load()
            handled = w

    def waker(i: int) -> None:
        for _ in range(rounds):
            for f in range(fields):
                reqs[i].store(f)
            looked = notify_me.load() if look_first else 0
            with m:
                work.store(work.load() + 1)
            if looked or (not look_first and notify_me.load()):
                with m:
                    kicks.store(kicks.load() + 1)

    ts = [p.start_thread(poller, "poller")]
    ts += [p.start_thread(functools.partial(waker, i), f"waker{i}") for i in range(wakers)]
    for t in ts:
        t.join()
    if slept:
        seen, kicked = slept[0]
        assert work.load() == seen or kicks.load() > kicked, (
            "lost wake-up: the poller slept with work pending and nobody kicked it"
        )


REQUEST_WAKEUP = Program(
    "request_wakeup", _request_wakeup, "bug", "sc",
    "a worker and two clients; a client looks for the idle worker before publishing its "
    "request (SC lost wake-up, two preemptions deep)",
)
NOTIFY_ORDER = Program(
    "notify_order", _notify_order, "bug", "sc",
    "aio_notify handshake, waker checks notify_me before publishing work (SC lost wake-up)",
)
NOTIFY_ROUNDS = Program(
    "notify_rounds", _notify_rounds, "safe", "sc",
    "aio_notify handshake done right, a poller and two wakers (SC, safe)",
)
LOCKED_COUNTER = Program(
    "locked_counter", _locked_counter, "safe", "sc", "two threads increment under one lock"
)


def _ttff_programs() -> dict[str, Program]:
    corpus = corpus_by_name()
    return {
        "lost_update": corpus["lost_update"],
        "abba_deadlock": corpus["abba_deadlock"],
        "notify_order": NOTIFY_ORDER,
    }


def _strategy_programs() -> dict[str, Program]:
    return {**_ttff_programs(), "request_wakeup": REQUEST_WAKEUP}


# ---------------------------------------------------------------------------------------
# frontrun's side: the same programs, as frontrun sees Python code
# ---------------------------------------------------------------------------------------
#: Written to a temporary file (frontrun traces user files only, never site-packages, so the
#: workers must not live in an installed package) and run as ``frontrun python <file> SPEC``.
FRONTRUN_DRIVER = r'''
"""frontrun's side of aioctx-verify's explore benchmark (see stress/_bench_explore.py)."""
import json
import sys
import threading
import time

import frontrun


class Counter:  # lost_update
    def __init__(self):
        self.value = 0


def increment(c):
    temp = c.value
    c.value = temp + 1


class TwoLocks:  # abba_deadlock
    def __init__(self):
        self.a = threading.Lock()
        self.b = threading.Lock()


def ab(s):
    with s.a:
        with s.b:
            pass


def ba(s):
    with s.b:
        with s.a:
            pass


class Handshake:  # notify_order
    def __init__(self):
        self.notify_me = 0
        self.work = 0
        self.slept = False
        self.kicked = False


def sleeper(s):
    s.notify_me = 1
    if not s.work:
        s.slept = True


def waker(s):
    if s.notify_me:
        s.kicked = True
    s.work = 1


class Locked:  # locked_counter (safe)
    def __init__(self):
        self.value = 0
        self.lock = threading.Lock()


def locked_increment(c):
    with c.lock:
        temp = c.value
        c.value = temp + 1


FIELDS, ROUNDS, WAKERS = 1, 1, 2  # notify_rounds' size (ROUNDS_* on our side)


class Rounds:  # notify_rounds (safe): the aio_notify handshake done right, in rounds
    def __init__(self):
        self.m = threading.Lock()
        self.notify_me = 0
        self.work = 0
        self.kicks = 0
        self.reqs = [0] * WAKERS
        self.slept = None


def poller(s):
    handled = 0
    for _ in range(WAKERS * ROUNDS + 1):
        s.notify_me = 1
        k = s.kicks
        w = s.work
        if w == handled:
            s.slept = (w, k)
            return
        s.notify_me = 0
        for _ in range(w - handled):
            for f in range(FIELDS):
                s.reqs[f % WAKERS]
        handled = w


def round_waker(i):
    def run(s):
        for _ in range(ROUNDS):
            for f in range(FIELDS):
                s.reqs[i] = f
            with s.m:
                s.work += 1
            if s.notify_me:
                with s.m:
                    s.kicks += 1
    return run


def rounds_hold(s):
    return s.slept is None or s.work == s.slept[0] or s.kicks > s.slept[1]


PROGRAMS = {
    "notify_rounds": (Rounds, [poller, round_waker(0), round_waker(1)], rounds_hold),
    "lost_update": (Counter, [increment, increment], lambda c: c.value == 2),
    "abba_deadlock": (TwoLocks, [ab, ba], lambda s: True),
    "notify_order": (Handshake, [sleeper, waker], lambda s: not (s.slept and not s.kicked)),
    "locked_counter": (Locked, [locked_increment, locked_increment], lambda c: c.value == 2),
}


def search(name, strategy, seed, max_schedules, max_seconds):
    setup, workers, invariant = PROGRAMS[name]
    kw = {"reproduce_on_failure": 0, "total_timeout": max_seconds}
    if strategy == "random":
        kw.update(max_attempts=max_schedules, seed=seed)
    else:
        kw.update(max_executions=max_schedules)
    t0 = time.perf_counter()
    r = frontrun.explore(setup=setup, workers=workers, invariant=invariant,
                         strategy=strategy, **kw)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "found": r.property_holds is False,
            "holds": r.property_holds, "explored": r.num_explored}


def main():
    spec = json.loads(sys.argv[1])
    out = {"version": getattr(frontrun, "__version__", "?"),
           "python": sys.version.split()[0], "ttff": {}, "throughput": None}
    n, secs = spec["max_schedules"], spec["max_seconds"]
    for name in spec["programs"]:
        out["ttff"][name] = {}
        for strategy in spec["strategies"]:
            search(name, strategy, -1, n, secs)  # warm-up, untimed
            out["ttff"][name][strategy] = [
                search(name, strategy, seed, n, secs) for seed in spec["seeds"]
            ]
    ex = spec.get("exhaust")
    if ex:  # frontrun's DPOR at a preemption bound, until it finishes or its time is up
        setup, workers, invariant = PROGRAMS[ex["program"]]
        t0 = time.perf_counter()
        r = frontrun.explore(setup=setup, workers=workers, invariant=invariant,
                             strategy="dpor", preemption_bound=ex["bound"],
                             reproduce_on_failure=0, total_timeout=ex["seconds"],
                             max_executions=10**9)
        seconds = time.perf_counter() - t0
        out["exhaust"] = {"seconds": seconds, "holds": r.property_holds,
                          "explored": r.num_explored,
                          "finished": r.property_holds is True and seconds < ex["seconds"]}
    tp = spec.get("throughput")
    if tp:
        search("locked_counter", "random", -1, 5, secs)  # warm-up
        r = search("locked_counter", "random", tp["seed"], tp["schedules"], tp["seconds"])
        out["throughput"] = r
    print("AIOCTX-FRONTRUN-RESULT " + json.dumps(out), flush=True)


main()
'''


def frontrun_version() -> str | None:
    """frontrun's version when it can be found on this Python, else None (never imports it)."""
    try:
        if importlib.util.find_spec("frontrun") is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version("frontrun")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _frontrun_command(driver: Path, spec: dict[str, Any]) -> list[str]:
    """``frontrun python DRIVER SPEC``, with both the CLI and the child on this interpreter."""
    return [
        sys.executable, "-m", "frontrun.cli", sys.executable, str(driver), json.dumps(spec)
    ]


@dataclass(frozen=True)
class FrontrunReport:
    """What one frontrun child run gave: figures, or why there are none (``error``)."""

    version: str | None
    error: str | None = None
    # ttff[program][strategy] = [{"seconds", "found", "explored"}, ...] one per seed
    ttff: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    throughput: dict[str, Any] | None = None
    # {"seconds", "holds", "explored", "finished"}: a bounded exhaustive search
    exhaust: dict[str, Any] | None = None


def run_frontrun(spec: dict[str, Any], *, timeout: float) -> FrontrunReport:
    """Run the frontrun driver once in a child process (its own session, killed as a group
    on timeout).  Never raises for a missing or failing frontrun: the report says why."""
    version = frontrun_version()
    if version is None:
        return FrontrunReport(
            None, "frontrun is not installed on this Python (pip install frontrun)"
        )
    with tempfile.TemporaryDirectory(prefix="aioctx-frontrun-") as tmp:
        driver = Path(tmp) / "aioctx_frontrun_driver.py"
        driver.write_text(FRONTRUN_DRIVER, encoding="utf-8")
        cmd = _frontrun_command(driver, spec)
        try:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True, cwd=tmp,
            )
        except OSError as e:
            return FrontrunReport(version, f"cannot start frontrun: {e}")
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return FrontrunReport(version, f"frontrun did not finish within {timeout:.0f} s")
        except BaseException:
            _kill_group(proc)
            raise
    lines = [ln for ln in out.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(err.strip().splitlines()[-3:]) or "no output"
        return FrontrunReport(
            version, f"frontrun driver exited with status {proc.returncode}: {tail}"
        )
    try:
        data = json.loads(lines[-1][len(_MARK):])
        return FrontrunReport(
            str(data.get("version", version)), None, dict(data["ttff"]), data.get("throughput"),
            data.get("exhaust"),
        )
    except (ValueError, KeyError, TypeError) as e:
        return FrontrunReport(version, f"unreadable frontrun driver output: {e}")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the child's whole session (the frontrun CLI runs the driver as a grandchild)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()


# ---------------------------------------------------------------------------------------
# The real platform, counted: how many platform operations a plain run performs
# ---------------------------------------------------------------------------------------
class _Tally:
    """A thread-safe count of platform operations (only untimed runs use it)."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.n += 1


class _CountedMutex:
    def __init__(self, inner: Mutex, tally: _Tally) -> None:
        self.inner = inner
        self._t = tally

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self._t.tick()
        return self.inner.acquire(blocking, timeout)

    def release(self) -> None:
        self._t.tick()
        self.inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        self.release()


class _CountedCondition:
    def __init__(self, inner: Condition, mutex: _CountedMutex, tally: _Tally) -> None:
        self._c = inner
        self._m = mutex
        self._t = tally

    def wait(self, timeout: float | None = None) -> bool:
        self._t.tick()
        return self._c.wait(timeout)

    def notify(self, n: int = 1) -> None:
        self._t.tick()
        self._c.notify(n)

    def notify_all(self) -> None:
        self._t.tick()
        self._c.notify_all()

    def __enter__(self) -> bool:
        return self._m.acquire()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        self._m.release()


class _CountedCell:
    def __init__(self, inner: AtomicCell[Any], tally: _Tally) -> None:
        self._c = inner
        self._t = tally
        self.name = inner.name

    def load(self, order: Ordering = Ordering.SEQ_CST) -> Any:
        self._t.tick()
        return self._c.load(order)

    def store(self, value: Any, order: Ordering = Ordering.SEQ_CST) -> None:
        self._t.tick()
        self._c.store(value, order)

    def exchange(self, value: Any, order: Ordering = Ordering.SEQ_CST) -> Any:
        self._t.tick()
        return self._c.exchange(value, order)

    def compare_exchange(
        self, expected: Any, value: Any, order: Ordering = Ordering.SEQ_CST
    ) -> Any:
        self._t.tick()
        return self._c.compare_exchange(expected, value, order)

    def fetch_add(self, delta: int, order: Ordering = Ordering.SEQ_CST) -> Any:
        self._t.tick()
        return self._c.fetch_add(delta, order)


class _CountedNotifier:
    def __init__(self, inner: RawNotifier, tally: _Tally) -> None:
        self._n = inner
        self._t = tally
        self.read_fd = inner.read_fd
        self.write_fd = inner.write_fd

    def set(self) -> None:
        self._t.tick()
        self._n.set()

    def test_and_clear(self) -> bool:
        self._t.tick()
        return self._n.test_and_clear()

    def close(self) -> None:
        self._n.close()


class _CountedPoller:
    def __init__(self, inner: Poller, tally: _Tally) -> None:
        self._p = inner
        self._t = tally

    def register(self, fd: int, events: int) -> None:
        self._p.register(fd, events)

    def unregister(self, fd: int) -> None:
        self._p.unregister(fd)

    def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
        self._t.tick()
        return self._p.poll(timeout_ns)


class _CountedHandle:
    def __init__(self, inner: ThreadHandle, tally: _Tally) -> None:
        self._h = inner
        self._t = tally
        self.name = inner.name

    def join(self, timeout: float | None = None) -> None:
        self._t.tick()
        self._h.join(timeout)

    def is_alive(self) -> bool:
        return self._h.is_alive()


class _CountingPlatform:
    """A RealPlatform that counts the operations the controlled platform makes scheduling
    points: thread spawn, exit and join, lock, unlock, wait, notify, atomic accesses,
    fences, notifier set and clear, poll, clock reads and yields."""

    def __init__(self) -> None:
        self._r = RealPlatform()
        self.tally = _Tally()
        self.tracer: Tracer | None = None
        self.current_thread: Callable[[], ThreadId] = self._r.current_thread

    def new_id(self) -> int:
        return self._r.new_id()

    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle:
        tally = self.tally
        tally.tick()

        def body() -> None:
            try:
                target()
            finally:
                tally.tick()  # exit

        return _CountedHandle(self._r.start_thread(body, name), tally)

    def main_thread(self) -> ThreadId:
        return self._r.main_thread()

    def yield_now(self) -> None:
        self.tally.tick()
        self._r.yield_now()

    def mutex(self, name: str = "") -> Mutex:
        return _CountedMutex(self._r.mutex(name), self.tally)

    def condition(self, mutex: Mutex) -> Condition:
        if not isinstance(mutex, _CountedMutex):
            raise TypeError("condition() needs a mutex of the same counting platform")
        return _CountedCondition(self._r.condition(mutex.inner), mutex, self.tally)

    def atomic(self, initial: Any, name: str = "") -> Any:
        return _CountedCell(self._r.atomic(initial, name), self.tally)

    def fence(self, kind: Fence) -> None:
        self.tally.tick()
        self._r.fence(kind)

    def notifier(self) -> RawNotifier:
        return _CountedNotifier(self._r.notifier(), self.tally)

    def poller(self) -> Poller:
        return _CountedPoller(self._r.poller(), self.tally)

    def fd_is_open(self, fd: int) -> bool:
        return self._r.fd_is_open(fd)

    def monotonic_ns(self) -> int:
        self.tally.tick()
        return self._r.monotonic_ns()

    def wall_ns(self) -> int:
        self.tally.tick()
        return self._r.wall_ns()


def _plain_run(program: Program, platform: Platform) -> None:
    """``program`` in this thread on a real platform (its main thread is this one)."""
    fn: Callable[[Any], None] = program.fn
    try:
        fn(platform)
    except Exception as e:
        raise BenchError(f"{program.name} failed on the real platform: {e!r}") from e


def _real_ops(program: Program, runs: int) -> float:
    """Median platform operations of one plain run (+1: the main thread's own exit, which
    the controlled platform counts as a step too)."""
    counts = []
    for _ in range(runs):
        plat = _CountingPlatform()
        _plain_run(program, plat)
        counts.append(plat.tally.n + 1)
    return float(statistics.median(counts))


# ---------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ExploreSizes:
    """How much work each explore figure does (see :meth:`for_mode`)."""

    reps: int
    schedules: int  # bh_cross_thread schedules of the steps/s exploration, per rep
    throughput_schedules: int  # locked_counter schedules per side, per rep
    overhead_runs: int  # runs per side per rep (controlled and real, alternating)
    count_runs: int  # counted (untimed) real runs, once
    seeds: int  # searches per program, side and frontrun strategy, per rep
    budget_schedules: int  # each search's cap on runs (both sides)
    budget_seconds: float  # each search's cap on wall time (both sides)
    strategy_schedules: int = 5000  # each search's cap on runs, per-strategy table
    bound3_schedules: int = 100_000  # cap of our bound-3 search (runs)
    bound3_frontrun_seconds: float = 150.0  # frontrun's time for the same bound

    @classmethod
    def for_mode(
        cls, *, quick: bool, scale: float = 1.0, reps: int | None = None
    ) -> ExploreSizes:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if reps is not None and reps < 1:
            raise ValueError(f"reps must be >= 1, got {reps}")

        def n(full: int, fast: int, floor: int) -> int:
            return max(floor, round((fast if quick else full) * scale))

        return cls(
            reps=reps if reps is not None else (3 if quick else 5),
            schedules=n(500, 100, 3),
            throughput_schedules=n(1000, 200, 3),
            overhead_runs=n(100, 30, 2),
            count_runs=n(10, 5, 1),
            seeds=n(20, 10, 1),
            budget_schedules=1000,
            budget_seconds=20.0 if not quick else 10.0,
            strategy_schedules=n(5000, 2000, 200),
            bound3_schedules=n(100_000, 100_000, 100),
            bound3_frontrun_seconds=max(2.0, 150.0 * scale),
        )


# ---------------------------------------------------------------------------------------
# Measurements of our side
# ---------------------------------------------------------------------------------------
def _steps_per_s(program: Program, schedules: int, seed: int) -> tuple[float, float]:
    """(steps/s, median steps per schedule) of a random exploration of a safe program."""
    r = explore(
        program, strategy="random", budget=Budget(schedules, 600.0), seed=seed, do_shrink=False
    )
    if r.verdict != "pass" or r.schedules != schedules:
        raise BenchError(
            f"{program.name}: random exploration ended {r.verdict} after {r.schedules} of "
            f"{schedules} schedules ({r.reason or (r.failure and r.failure.message)})"
        )
    return r.steps_per_second, r.steps / r.schedules


def _schedules_per_s(program: Program, schedules: int, seed: int) -> float:
    r = explore(
        program, strategy="random", budget=Budget(schedules, 600.0), seed=seed, do_shrink=False
    )
    if r.verdict != "pass" or r.schedules != schedules:
        raise BenchError(f"{program.name}: random exploration ended {r.verdict} ({r.reason})")
    return r.schedules_per_second


def _overhead(program: Program, runs: int, seed: int, ours_first: bool) -> tuple[float, float]:
    """(controlled, real) median microseconds of one run, sampled alternately."""
    strat = RandomStrategy(seed)
    ctl: list[float] = []
    real: list[float] = []

    def controlled() -> None:
        strat.next_run()
        t0 = time.perf_counter_ns()
        out = run_schedule(program, strat)
        ctl.append((time.perf_counter_ns() - t0) / 1e3)
        if out.verdict != "pass":
            raise BenchError(f"{program.name} (controlled): {out.verdict} {out.message}")

    def plain() -> None:
        plat = RealPlatform()
        t0 = time.perf_counter_ns()
        _plain_run(program, plat)
        real.append((time.perf_counter_ns() - t0) / 1e3)

    for i in range(runs):
        if (i % 2 == 0) == ours_first:
            controlled()
            plain()
        else:
            plain()
            controlled()
    return statistics.median(ctl), statistics.median(real)


@dataclass
class _Search:
    seconds: float  # math.inf when the budget ran out without a failure
    schedules: int


def _ours_ttff(
    program: Program, strategy: str, seed: int, budget: Budget, shrink: bool
) -> _Search:
    t0 = time.perf_counter()
    r = explore(program, strategy=strategy, budget=budget, seed=seed, do_shrink=shrink)
    dt = time.perf_counter() - t0
    return _Search(dt if r.verdict == "fail" else math.inf, r.schedules)


def _strategy_table(
    sizes: ExploreSizes, say: Callable[[str], None]
) -> list[str]:
    """Notes: time and schedules to the first failure of each of :data:`STRATEGY_TTFF` on
    each of :data:`STRATEGY_PROGRAMS`, medians over ``sizes.seeds`` seeds (see the module)."""
    progs = _strategy_programs()
    cap = Budget(sizes.strategy_schedules, 3600.0)
    say(f"explore: strategies x {len(progs)} buggy programs, {sizes.seeds} seed(s)")
    width = 18
    lines = [
        f"explore: time (schedules) to first failure per strategy, median over "
        f"{sizes.seeds} seed(s) (dfs: once), at most {cap.schedules} schedules per search",
        f"  {'program':<16}" + "".join(f"{s:>{width}}" for s in STRATEGY_TTFF),
    ]
    for name, prog in progs.items():
        cells = []
        for strat in STRATEGY_TTFF:
            seeds = range(1 if strat in _DETERMINISTIC else sizes.seeds)
            runs = [_ours_ttff(prog, strat, sd, cap, False) for sd in seeds]
            hit = sum(math.isfinite(r.seconds) for r in runs)
            sched = _median([float(r.schedules) if math.isfinite(r.seconds) else math.inf
                             for r in runs])
            t = _median([r.seconds for r in runs])
            cell = "not found" if math.isinf(t) else f"{_ms(t)} ({sched:.0f})"
            if hit < len(runs):
                cell += f" {hit}/{len(runs)}"
            cells.append(f"{cell:>{width}}")
        lines.append(f"  {name:<16}" + "".join(cells))
    return lines


@dataclass(frozen=True)
class _Exhaust:
    """Schedules each search needed to exhaust one program (None: not within the cap)."""

    dpor: int | None
    dfs: int | None
    dfs_pruned: int | None
    dpor_unbounded: int | None
    classes: int  # unbounded DPOR's classes (complete runs not sleep-set blocked)


def _exhaust_count(program: Program, strategy: Any, cap: int = DPOR_CAP) -> int | None:
    r = explore(program, strategy=strategy, budget=Budget(cap, 1e9), do_shrink=False)
    if r.verdict != "pass":
        why = r.reason or (r.failure.message if r.failure is not None else "")
        raise BenchError(f"{program.name}: {strategy.name} ended {r.verdict}: {why}")
    return r.schedules + r.pruned if r.exhausted else None


@functools.cache
def _exhaust(name: str) -> _Exhaust:
    """The DPOR rows' counts for corpus program ``name`` (deterministic: once a process)."""
    prog = corpus_by_name()[name]
    free = DPORStrategy()
    unbounded = _exhaust_count(prog, free, DPOR_UNBOUNDED_CAP)
    return _Exhaust(
        _exhaust_count(prog, DPORStrategy(DPOR_BOUND)),
        _exhaust_count(prog, DFSStrategy(DPOR_BOUND, prune=False)),
        _exhaust_count(prog, DFSStrategy(DPOR_BOUND)),
        unbounded,
        free.classes,
    )


def _dpor_rows(say: Callable[[str], None]) -> tuple[list[BenchResult], list[str]]:
    say(f"explore: DPOR vs DFS, exhausting {len(DPOR_PROGRAMS)} safe programs at bound "
        f"{DPOR_BOUND}")
    rows: list[BenchResult] = []
    notes = [f"explore: schedules to exhaust at preemption bound {DPOR_BOUND} (cap "
             f"{DPOR_CAP}): dpor / dfs unpruned (the row) / dfs pruned / dpor unbounded, cap "
             f"{DPOR_UNBOUNDED_CAP} (its classes)"]
    for name in DPOR_PROGRAMS:
        e = _exhaust(name)
        ours = math.nan if e.dpor is None else float(e.dpor)
        peer = math.nan if e.dfs is None else float(e.dfs)
        rows.append(BenchResult(
            f"dpor_{name}", ours, peer, "schedules", Target("<=", 0.2),
            f"DFS at bound {DPOR_BOUND} without state pruning (every schedule within the "
            "bound), schedules to exhaust; ours: DPOR at the same bound",
        ))

        def show(v: int | None) -> str:
            return "not exhausted" if v is None else str(v)

        notes.append(f"  {name}: {show(e.dpor)} / {show(e.dfs)} / {show(e.dfs_pruned)} / "
                     f"{show(e.dpor_unbounded)} ({e.classes})")
    return rows, notes


def _bound3_row(
    sizes: ExploreSizes, say: Callable[[str], None], no_peer: str | None
) -> tuple[BenchResult, list[str]]:
    """The bound-3 row: seconds for our DPOR to exhaust :data:`BOUND3_PROGRAM` at
    preemption bound :data:`BOUND3`, against frontrun's DPOR at the same bound (given
    ``bound3_frontrun_seconds``; when it does not finish, its figure is that time, a lower
    bound).  Ours is infinite when it does not exhaust within ``bound3_schedules`` runs.
    ``no_peer`` says why frontrun is not run (None: run it)."""
    say(f"explore: exhausting {BOUND3_PROGRAM} at preemption bound {BOUND3} (DPOR; frontrun "
        f"given {sizes.bound3_frontrun_seconds:.0f} s)")
    t0 = time.perf_counter()
    r = explore(NOTIFY_ROUNDS, strategy=DPORStrategy(BOUND3),
                budget=Budget(sizes.bound3_schedules, 1e9), do_shrink=False)
    seconds = time.perf_counter() - t0
    if r.verdict != "pass":
        why = r.reason or (r.failure.message if r.failure is not None else "")
        raise BenchError(f"{BOUND3_PROGRAM}: dpor ended {r.verdict}: {why}")
    ours = seconds if r.exhausted else math.inf
    runs = r.schedules + r.pruned
    note = (f"explore: {BOUND3_PROGRAM} at bound {BOUND3}: ours (dpor) "
            + (f"exhausted in {seconds:.1f} s, {runs} schedules" if r.exhausted else
               f"not exhausted within {runs} schedules ({seconds:.1f} s)"))
    peer, missing = math.nan, ""
    if no_peer is None:
        spec = {"programs": [], "strategies": [], "seeds": [], "max_schedules": 0,
                "max_seconds": 0.0, "exhaust": {"program": BOUND3_PROGRAM, "bound": BOUND3,
                                                "seconds": sizes.bound3_frontrun_seconds}}
        got = run_frontrun(spec, timeout=sizes.bound3_frontrun_seconds + 120.0)
        ex = got.exhaust
        try:
            if got.error is not None:
                raise ValueError(got.error)
            if ex is None or ex.get("holds") is False:
                raise ValueError(f"unexpected frontrun result {ex}")
            peer = float(ex["seconds"])
            note += (f"; frontrun dpor {int(ex['explored'])} interleavings in {peer:.1f} s, "
                     + ("finished" if ex["finished"] else "NOT finished (its time was up)"))
        except (KeyError, TypeError, ValueError) as e:
            peer, missing = math.nan, f"; NOT MEASURED: {e}"
            note += f"; frontrun: {e}"
    else:
        missing = f"; NOT MEASURED: {no_peer}"
    row = BenchResult(
        f"bound{BOUND3}_{BOUND3_PROGRAM}", ours, peer, "s", Target("<=", BOUND3_TARGET_S, "s"),
        f"frontrun dpor at preemption_bound={BOUND3} on the same program, given "
        f"{sizes.bound3_frontrun_seconds:.0f} s (its time when it does not finish); ours: "
        f"DPOR at bound {BOUND3}, seconds to exhaust (target absolute){missing}",
    )
    return row, [note]


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def _ms(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "not found"
    return f"{v * 1e3:.2f} ms"


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------
@dataclass
class ExploreBench:
    """The rows (in :data:`EXPLORE_BENCHMARK_NAMES` order) and notes to print under them."""

    results: list[BenchResult]
    notes: list[str]
    frontrun: str | None  # the version compared with, None when no comparison was made


def run_explore_benchmarks(
    *,
    quick: bool = False,
    scale: float = 1.0,
    reps: int | None = None,
    strategy: str = "random",
    progress: Callable[[str], None] | None = None,
    frontrun_timeout: float | None = None,
) -> ExploreBench:
    """Measure every figure of :data:`EXPLORE_BENCHMARK_NAMES`, in that order.

    Args:
        quick, scale, reps: as for :func:`stress.run_benchmarks`.
        strategy: our strategy for time to first failure (``random`` or ``pct``).
        progress: called with a short line as each repetition starts.
        frontrun_timeout: bound on each frontrun child run (default: from the budgets).

    Raises:
        BenchError: one of our own explorations misbehaved (a safe program failed).  A
            missing, failing or slow frontrun never raises: its rows get a NaN peer.
    """
    if strategy not in ("random", "pct"):
        raise ValueError(f"strategy must be 'random' or 'pct', got {strategy!r}")
    sizes = ExploreSizes.for_mode(quick=quick, scale=scale, reps=reps)
    say = progress or (lambda _line: None)
    corpus = corpus_by_name()
    tp_prog = corpus[THROUGHPUT_PROGRAM]
    ttff_progs = _ttff_programs()
    budget = Budget(sizes.budget_schedules, sizes.budget_seconds)
    searches = len(TTFF_PROGRAMS) * (sizes.seeds + 1) * len(FRONTRUN_STRATEGIES)
    timeout = frontrun_timeout if frontrun_timeout is not None else (
        60.0 + searches * min(sizes.budget_seconds, 2.0) + 2 * sizes.budget_seconds
    )

    version = frontrun_version()
    fr_error: str | None = None if version is not None else (
        "frontrun is not installed on this Python (pip install frontrun)"
    )
    say(
        f"explore: comparing with frontrun {version} (python -m frontrun.cli python <driver>)"
        if version is not None else f"explore: no frontrun comparison: {fr_error}"
    )

    # Warm-up, untimed: imports, the first threads, caches.
    for prog in ttff_progs.values():
        explore(prog, strategy=strategy, budget=Budget(20, 5.0), seed=-1, do_shrink=False)
    explore(tp_prog, strategy="random", budget=Budget(3, 5.0), seed=-1, do_shrink=False)
    _real_ops(tp_prog, 1)

    steps: list[float] = []
    steps_per_run: list[float] = []
    real_us: list[float] = []
    ctl_us: list[float] = []
    sched_ours: list[float] = []
    sched_fr: list[float] = []
    ttff: dict[str, list[float]] = {p: [] for p in TTFF_PROGRAMS}
    ttff_shrunk: dict[str, list[float]] = {p: [] for p in TTFF_PROGRAMS}
    other = "pct" if strategy == "random" else "random"
    ttff_other: dict[str, list[float]] = {p: [] for p in TTFF_PROGRAMS}
    found: dict[str, list[_Search]] = {p: [] for p in TTFF_PROGRAMS}
    fr_ttff: dict[str, dict[str, list[float]]] = {
        p: {s: [] for s in FRONTRUN_STRATEGIES} for p in TTFF_PROGRAMS
    }
    fr_explored: dict[str, dict[str, list[int]]] = {
        p: {s: [] for s in FRONTRUN_STRATEGIES} for p in TTFF_PROGRAMS
    }
    # frontrun's dpor: executions to the first failure (inf where it did not find it)
    fr_dpor_runs: dict[str, list[float]] = {p: [] for p in TTFF_PROGRAMS}
    sched_error: str | None = None  # frontrun's throughput figure alone went wrong

    for rep in range(sizes.reps):
        say(f"explore: repetition {rep + 1}/{sizes.reps}")
        first = rep % 2 == 0
        seeds = [rep * sizes.seeds + i for i in range(sizes.seeds)]

        def ours_block(seeds: list[int] = seeds, rep: int = rep) -> None:
            s, per = _steps_per_s(tp_prog, sizes.schedules, seed=rep)
            steps.append(s)
            steps_per_run.append(per)
            sched_ours.append(_schedules_per_s(LOCKED_COUNTER, sizes.throughput_schedules, rep))
            for name, prog in ttff_progs.items():
                runs = [_ours_ttff(prog, strategy, sd, budget, False) for sd in seeds]
                found[name].extend(runs)
                ttff[name].append(_median([r.seconds for r in runs]))
                shrunk = [_ours_ttff(prog, strategy, sd, budget, True) for sd in seeds]
                ttff_shrunk[name].append(_median([r.seconds for r in shrunk]))
                alt = [_ours_ttff(prog, other, sd, budget, False) for sd in seeds]
                ttff_other[name].append(_median([r.seconds for r in alt]))

        def frontrun_block(seeds: list[int] = seeds, rep: int = rep) -> None:
            nonlocal fr_error, sched_error
            if fr_error is not None:
                return
            spec = {
                "programs": list(TTFF_PROGRAMS),
                "strategies": list(FRONTRUN_STRATEGIES),
                "seeds": seeds,
                "max_schedules": sizes.budget_schedules,
                "max_seconds": sizes.budget_seconds,
                "throughput": {
                    "seed": rep, "schedules": sizes.throughput_schedules,
                    "seconds": 600.0,
                },
            }
            rep_report = run_frontrun(spec, timeout=timeout)
            if rep_report.error is not None:
                fr_error = rep_report.error
                say(f"explore: frontrun comparison dropped: {fr_error}")
                return
            try:
                for name in TTFF_PROGRAMS:
                    for strat in FRONTRUN_STRATEGIES:
                        got = rep_report.ttff[name][strat]
                        fr_ttff[name][strat].append(_median(
                            [float(g["seconds"]) if g["found"] else math.inf for g in got]
                        ))
                        fr_explored[name][strat].extend(int(g["explored"]) for g in got)
                        if strat == "dpor":
                            fr_dpor_runs[name].extend(
                                float(g["explored"]) if g["found"] else math.inf for g in got
                            )
            except (KeyError, TypeError, ValueError) as e:
                fr_error = f"unexpected frontrun driver output ({type(e).__name__}: {e})"
                say(f"explore: frontrun comparison dropped: {fr_error}")
                return
            tp = rep_report.throughput
            try:
                if tp is None or tp.get("holds") is not True or not tp["explored"] > 0:
                    raise ValueError(f"locked_counter did not pass under frontrun: {tp}")
                sched_fr.append(float(tp["explored"]) / float(tp["seconds"]))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
                sched_error = sched_error or f"{type(e).__name__}: {e}"

        if first:
            ours_block()
            frontrun_block()
        else:
            frontrun_block()
            ours_block()
        c, r = _overhead(tp_prog, sizes.overhead_runs, seed=rep, ours_first=first)
        ctl_us.append(c)
        real_us.append(r)

    real_ops = _real_ops(tp_prog, sizes.count_runs)
    real_run_us = _median(real_us)
    compared = fr_error is None and version is not None
    fr_name = f"frontrun {version}" if version else "frontrun"
    missing = f"; NOT MEASURED: {fr_error}" if not compared else ""
    sched_ok = compared and sched_error is None and bool(sched_fr)
    sched_missing = missing or (f"; NOT MEASURED: {sched_error}" if not sched_ok else "")

    results: list[BenchResult] = [
        BenchResult(
            "explore_steps_per_s", _median(steps), real_ops / (real_run_us / 1e6), "steps/s",
            Target(">=", 1.0),
            f"{THROUGHPUT_PROGRAM} run plainly on RealPlatform: platform operations per second "
            "(operations counted by a counting proxy in untimed runs, over the median plain run; "
            "target: a controlled step no dearer than a real operation, moonshot 3x)",
        ),
        BenchResult(
            "explore_schedules_per_s", _median(sched_ours),
            _median(sched_fr) if sched_ok else math.nan, "schedules/s", Target(">=", 1.0),
            f"{fr_name} explore(strategy='random') on locked_counter (two threads increment "
            f"under a threading.Lock), same number of schedules{sched_missing}",
        ),
        BenchResult(
            "explore_overhead", _median(ctl_us), real_run_us, "us/run", Target("<=", 10.0),
            f"one plain run of {THROUGHPUT_PROGRAM} on a fresh RealPlatform, alternating with "
            "controlled runs (informational target)",
        ),
    ]
    peers: dict[str, tuple[float, str]] = {}
    for name in TTFF_PROGRAMS:
        by = {s: _median(fr_ttff[name][s]) for s in FRONTRUN_STRATEGIES}
        best = min(FRONTRUN_STRATEGIES, key=lambda s: by[s]) if compared else ""
        peers[name] = (by[best] if compared else math.nan, best)
        results.append(
            BenchResult(
                f"ttff_{name}", _median(ttff[name]) * 1e3, peers[name][0] * 1e3, "ms",
                Target("<=", 1.0),
                f"{fr_name} explore() on the equivalent plain-Python program, the faster of "
                "strategy='dpor' and 'random' (stop at first failure, reproduce_on_failure=0, "
                f"same budget); ours: stress.explore strategy={strategy!r}, no shrinking{missing}",
            )
        )

    ttff_cap = Budget(sizes.strategy_schedules, 3600.0)
    for name, prog in ttff_progs.items():  # deterministic: one search
        got = _ours_ttff(prog, "dpor", 0, ttff_cap, False)
        results.append(BenchResult(
            f"ttff_dpor_{name}",
            float(got.schedules) if math.isfinite(got.seconds) else math.inf,
            _median(fr_dpor_runs[name]) if compared else math.nan, "schedules",
            Target("<=", 1.0),
            f"{fr_name} explore(strategy='dpor') (preemption bound 2), executions to the first "
            f"failure, median of its searches; ours: DPOR at bound 2, schedules to the first "
            f"failure (at most {ttff_cap.schedules}){missing}",
        ))

    by_name = {r.name: r for r in results}
    notes = [
        f"explore: {THROUGHPUT_PROGRAM}: {_median(steps_per_run):.0f} controlled steps per "
        f"schedule vs {real_ops:.0f} platform operations per plain run; one run "
        f"{_median(ctl_us):.0f} us controlled vs {real_run_us:.0f} us real",
        f"explore: time to first failure, median over {sizes.seeds} seed(s) x {sizes.reps} "
        f"rep(s); budget {budget.schedules} schedules / {budget.seconds:g} s per search",
    ]
    for name in TTFF_PROGRAMS:
        runs = found[name]
        hit = [r for r in runs if math.isfinite(r.seconds)]
        line = (
            f"  {name}: ours ({strategy}) {_ms(_median(ttff[name]))}, found {len(hit)}/"
            f"{len(runs)}, median {_median([float(r.schedules) for r in runs]):.0f} "
            f"schedule(s); with shrinking {_ms(_median(ttff_shrunk[name]))}; "
            f"ours ({other}) {_ms(_median(ttff_other[name]))}"
        )
        if compared:
            parts = []
            for s in FRONTRUN_STRATEGIES:
                ex = fr_explored[name][s]
                parts.append(
                    f"{s} {_ms(_median(fr_ttff[name][s]))} "
                    f"(median {_median([float(x) for x in ex]):.0f} execution(s))"
                )
            line += f"; frontrun {', '.join(parts)}"
            if not by_name[f"ttff_{name}"].met:
                line += f"  <-- ours slower than frontrun {peers[name][1]}"
        notes.append(line)
    notes.append(
        "  not compared (frontrun has no weak-memory model; CPython threads are sequentially "
        "consistent): notify_no_fence_tso, notify_no_fence_pso, mp_no_wmb_pso"
    )
    notes.extend(_strategy_table(sizes, say))
    dpor_rows, dpor_notes = _dpor_rows(say)
    results.extend(dpor_rows)
    notes.extend(dpor_notes)
    b3_row, b3_notes = _bound3_row(
        sizes, say, None if compared else (fr_error or "frontrun not compared")
    )
    results.append(b3_row)
    notes.extend(b3_notes)
    if not compared:
        notes.append(f"explore: frontrun rows have no peer: {fr_error}")
    elif not sched_ok:
        notes.append(f"explore: explore_schedules_per_s has no peer: {sched_error}")
    return ExploreBench(results, notes, version if compared else None)
