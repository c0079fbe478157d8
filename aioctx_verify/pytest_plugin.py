"""pytest plugin: test your own event-loop code under the controlled scheduler.

Installed with the package (entry point ``pytest11``), nothing to add to a conftest::

    import pytest
    from aioctx_verify.impl import Fence

    @pytest.mark.explore(strategy="pct", runs=500, memory="tso", seed=0)
    def test_my_device(aioctx):
        it = aioctx.iothread("io")          # a started IOThread of this run
        ...                                 # the body is the program; each run a schedule

* ``aioctx`` (fixture): the run's platform (:attr:`Aioctx.platform`) and helpers that make
  impl objects on it; the P1/P2/P3/LIVE monitors watch every run.  A test that asks for it
  without a marker is explored with the marker's defaults.
* ``@pytest.mark.explore(strategy="pct", runs=100, memory="sc", seed=0,
  max_preemptions=2, depth=3)``: the body runs once per schedule on the controlled platform
  (``random``, ``pct``, ``dfs`` or ``conflict``, which brings two threads' accesses to one
  shared object together; ``max_preemptions`` bounds DFS, ``depth`` is PCT's).  A
  failing run fails the test with the shrunk schedule, the per-thread listing, the property
  that broke and the command that replays it; the schedule and seed go into the JUnit XML
  properties.
* ``@pytest.mark.stress(duration=1.0, noise=True, seed=0)``: the body runs as trials on real
  threads with the stress runner's noise, monitors, stall watch and watchdog.  Both markers
  on one test: explored, then stressed.
* ``--aioctx-replay SCHEDULE`` reruns one schedule of one test exactly;
  ``--aioctx-strategy``, ``--aioctx-runs``, ``--aioctx-memory``, ``--aioctx-seed`` override
  every marker (CI against nightly).

With pytest-timeout, an exploration that outlives 90% of the test's timeout (a body blocked
outside the platform, say on a real ``threading.Event``) is ended by the plugin and reported
with every controlled thread's position, not as a bare timeout.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from aioctx_verify.vocab import STRATEGY_NAMES

if TYPE_CHECKING:
    from aioctx_verify.impl import AioContext, IOThread, Platform, ThreadHandle
    from aioctx_verify.stress.controlled import ControlledPlatform, RunOutcome
    from aioctx_verify.stress.real import Trial

__all__ = ["Aioctx", "ExploreSettings"]

_STRATEGIES = STRATEGY_NAMES
_MEMORIES = ("sc", "tso", "pso", "c11")
#: Fraction of pytest-timeout's bound after which the plugin ends an exploration itself.
_TIMEOUT_SHARE = 0.9
_TIMEOUT_KEY = pytest.StashKey[float]()
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")


#: A marker argument or command-line option the plugin cannot use.
AioctxUsageError = pytest.UsageError


# ------------------------------------------------------------------------------------------
# Options and markers
# ------------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("aioctx", "aioctx-verify: explore event-loop code")
    g.addoption("--aioctx-replay", metavar="SCHEDULE", default=None,
                help="rerun one schedule (printed by a failing explore test) exactly")
    g.addoption("--aioctx-strategy", choices=_STRATEGIES, default=None,
                help="override every explore marker's strategy")
    g.addoption("--aioctx-runs", type=int, metavar="N", default=None,
                help="override every explore marker's runs (schedules per test)")
    g.addoption("--aioctx-memory", choices=_MEMORIES, default=None,
                help="override every explore marker's memory model")
    g.addoption("--aioctx-seed", type=int, metavar="N", default=None,
                help="override every explore and stress marker's seed")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "explore(strategy='pct', runs=100, memory='sc', seed=0, max_preemptions=2, depth=3, "
        "monitors=True): "
        "run the test body once per schedule on aioctx-verify's controlled platform",
    )
    config.addinivalue_line(
        "markers",
        "stress(duration=1.0, noise=True, seed=0): run the test body as trials on real "
        "threads under aioctx-verify's stress runner",
    )
    runs = config.getoption("aioctx_runs")
    if runs is not None and runs < 1:
        raise AioctxUsageError(f"--aioctx-runs must be at least 1, got {runs}")


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """pytest-timeout tells us the test's bound (then sets its own timer as usual)."""
    timeout = getattr(settings, "timeout", None)
    if timeout:
        item.stash[_TIMEOUT_KEY] = float(timeout)


@dataclass(frozen=True)
class ExploreSettings:
    """An explore marker's arguments after the command-line overrides."""

    strategy: str = "pct"
    runs: int = 100
    memory: str = "sc"
    seed: int = 0
    max_preemptions: int = 2
    depth: int = 3
    #: the P1/P2/P3/LIVE monitors watch every run (off: only the body's own checks, a
    #: deadlock and a lost wake-up fail a run)
    monitors: bool = True

    @classmethod
    def of(cls, item: pytest.Item) -> ExploreSettings:
        mark = item.get_closest_marker("explore")
        kwargs: dict[str, Any] = dict(mark.kwargs) if mark is not None else {}
        if mark is not None and mark.args:
            raise AioctxUsageError(
                f"{item.nodeid}: @pytest.mark.explore takes keyword arguments only "
                "(strategy=, runs=, memory=, seed=, max_preemptions=, depth=, monitors=)"
            )
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise AioctxUsageError(
                f"{item.nodeid}: unknown @pytest.mark.explore argument(s) {unknown}; "
                f"known: {sorted(known)}"
            )
        cfg = item.config
        for opt, key in (("aioctx_strategy", "strategy"), ("aioctx_runs", "runs"),
                         ("aioctx_memory", "memory"), ("aioctx_seed", "seed")):
            value = cfg.getoption(opt)
            if value is not None:
                kwargs[key] = value
        s = cls(**kwargs)
        if s.strategy not in _STRATEGIES:
            raise AioctxUsageError(
                f"{item.nodeid}: explore strategy {s.strategy!r} is not one of {_STRATEGIES}"
            )
        if s.memory not in _MEMORIES:
            raise AioctxUsageError(
                f"{item.nodeid}: explore memory {s.memory!r} is not one of {_MEMORIES}"
            )
        if not isinstance(s.monitors, bool):
            raise AioctxUsageError(f"{item.nodeid}: explore monitors={s.monitors!r} is not a bool")
        for key in ("runs", "max_preemptions", "depth", "seed"):
            v = getattr(s, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if key == "runs" else 0):
                raise AioctxUsageError(f"{item.nodeid}: explore {key}={v!r} is not a valid count")
        return s


# ------------------------------------------------------------------------------------------
# The fixture
# ------------------------------------------------------------------------------------------
@dataclass
class Aioctx:
    """The ``aioctx`` fixture: the current run's platform and helpers that make impl objects
    on it.  Live only while the test body runs under the plugin (each run of an exploration,
    each stress trial); everything made through it is torn down at the end of the run."""

    mode: str = ""  # "explore" | "stress" while a run is under way
    run_index: int = -1
    _platform: Platform | None = None
    _trial: Trial | None = None
    _iothreads: list[IOThread] = field(default_factory=list)
    _contexts: list[AioContext] = field(default_factory=list)
    _threads: list[ThreadHandle] = field(default_factory=list)

    @property
    def platform(self) -> Platform:
        """The run's platform: controlled (explore) or real and noisy (stress)."""
        if self._platform is None:
            from aioctx_verify.impl import UsageError

            raise UsageError(
                "the aioctx fixture is live only inside a test body run by the plugin "
                "(@pytest.mark.explore or @pytest.mark.stress): use it in the body, not in "
                "another fixture"
            )
        return self._platform

    def context(self, name: str = "") -> AioContext:
        """A new AioContext on the run's platform (its reference dropped at the run's end)."""
        from aioctx_verify.impl import AioContext

        ctx = AioContext(self.platform, name=name)
        self._contexts.append(ctx)
        return ctx

    def iothread(self, name: str = "") -> IOThread:
        """A started IOThread on the run's platform (joined at the run's end)."""
        from aioctx_verify.impl import IOThread

        if self._trial is not None:
            return self._trial.iothread(name or f"io{len(self._trial.iothreads)}")
        it = IOThread(self.platform, name=name)
        self._iothreads.append(it)
        return it.start()

    def spawn(self, target: Callable[[], None], name: str = "") -> ThreadHandle:
        """Start a thread of the run (joined at the run's end if the body does not)."""
        name = name or f"thread{len(self._threads) + 1}"
        if self._trial is not None:
            h: ThreadHandle = self._trial.spawn(target, name)
        else:
            h = self.platform.start_thread(target, name)
        self._threads.append(h)
        return h

    # -- the plugin's side -------------------------------------------------------------------
    def _begin(self, mode: str, index: int, platform: Platform, trial: Trial | None) -> None:
        self.mode, self.run_index, self._platform, self._trial = mode, index, platform, trial
        self._iothreads, self._contexts, self._threads = [], [], []

    def _end(self) -> None:
        """Join what the body left running, in the run (so teardown is explored too)."""
        try:
            if self._trial is None:
                for h in self._threads:
                    h.join()
                for it in reversed(self._iothreads):
                    it.join()
            for ctx in reversed(self._contexts):
                if not ctx.closed:
                    ctx.unref()
        finally:
            self._platform = self._trial = None
            self.mode = ""


@pytest.fixture
def aioctx() -> Iterator[Aioctx]:
    """The current run's platform and helpers (see :class:`Aioctx`); the test body is run by
    the plugin under ``@pytest.mark.explore`` (the default) or ``@pytest.mark.stress``."""
    yield Aioctx()


# ------------------------------------------------------------------------------------------
# Running the body
# ------------------------------------------------------------------------------------------
def _wants_plugin(item: pytest.Function) -> bool:
    return (
        item.get_closest_marker("explore") is not None
        or item.get_closest_marker("stress") is not None
        or "aioctx" in getattr(item, "fixturenames", ())
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not _wants_plugin(pyfuncitem):
        return None
    if pyfuncitem.get_closest_marker("stress") is None or pyfuncitem.get_closest_marker(
        "explore"
    ) is not None:
        _explore_item(pyfuncitem)
    replaying = pyfuncitem.config.getoption("aioctx_replay") is not None
    if pyfuncitem.get_closest_marker("stress") is not None and not replaying:
        _stress_item(pyfuncitem)
    return True


def _body(item: pytest.Function) -> tuple[Callable[[], object], Aioctx | None]:
    funcargs = item.funcargs
    args = {name: funcargs[name] for name in item._fixtureinfo.argnames}
    handle = funcargs.get("aioctx")
    fixture = handle if isinstance(handle, Aioctx) else None

    def call() -> object:
        return item.obj(**args)

    return call, fixture


def program_name(item: pytest.Item) -> str:
    """The test's name as a schedule string's program field."""
    return _NAME_BAD.sub("-", item.name)[:120] or "test"


def replay_command(item: pytest.Item, schedule: str) -> str:
    """The command line that reruns ``schedule`` of ``item`` (from the directory pytest was
    started in)."""
    cfg = item.config
    rel = os.path.relpath(str(item.path), str(cfg.invocation_params.dir))
    tail = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    return f"pytest {shlex.quote(rel + '::' + tail)} --aioctx-replay {shlex.quote(schedule)}"


class _Watch:
    """Ends an exploration that outlives its share of pytest-timeout's bound: the current
    run is aborted and the threads' positions are kept for the report."""

    def __init__(self, item: pytest.Item) -> None:
        timeout = item.stash.get(_TIMEOUT_KEY, 0.0)
        self.limit = timeout * _TIMEOUT_SHARE if timeout > 0 else None
        self.fired = threading.Event()
        self.positions: list[str] = []
        self.platform: ControlledPlatform | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> _Watch:
        if self.limit is not None:
            self._timer = threading.Timer(self.limit, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def deadline_left(self, started: float) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - (time.monotonic() - started))

    def _fire(self) -> None:
        with self._lock:
            self.fired.set()
            plat = self.platform
            if plat is not None:
                self.positions = plat.thread_positions()
                plat.cancel("timeout", f"the run did not end within {self.limit:.1f} s")


def _explore_item(item: pytest.Function) -> None:
    from aioctx_verify.stress.controlled import (
        InvalidScheduleError,
        ReplayStrategy,
        Schedule,
        make_strategy,
    )
    from aioctx_verify.stress.explore import Program, run_schedule, shrink

    s = ExploreSettings.of(item)
    call, fixture = _body(item)
    name = program_name(item)
    watch = _Watch(item)

    def fn(p: ControlledPlatform) -> None:
        with watch._lock:
            watch.platform = p
        if fixture is not None:
            fixture._begin("explore", runs_done, p, None)
        try:
            call()
        finally:
            if fixture is not None:
                fixture._end()

    runs_done = 0
    replay = item.config.getoption("aioctx_replay")
    if replay is not None:
        try:
            sched = Schedule.parse(replay)
        except InvalidScheduleError as e:
            raise AioctxUsageError(f"--aioctx-replay: {e}") from None
        if sched.program != name:
            pytest.skip(f"--aioctx-replay names test {sched.program!r}, not this one ({name})")
        program = Program(name, fn, memory=sched.memory, monitors=s.monitors)
        with watch:
            out = run_schedule(program, ReplayStrategy(sched.tokens), sched.memory)
        _raise_if_failed(item, s, out, None, sched.memory, watch, replayed=str(sched))
        return

    program = Program(name, fn, memory=s.memory, monitors=s.monitors)
    strat = make_strategy(s.strategy, s.seed, s.max_preemptions, s.depth)
    started = time.monotonic()
    found: RunOutcome | None = None
    exhausted = False
    with watch:
        while runs_done < s.runs and not watch.fired.is_set():
            if not strat.next_run():
                exhausted = True
                break
            out = run_schedule(program, strat, s.memory)
            if out.verdict == "pruned":
                continue
            runs_done += 1
            if out.verdict == "fail" or watch.fired.is_set():
                found = out
                break
            if out.verdict == "inconclusive" and out.kind in ("nondeterminism", "watchdog"):
                pytest.fail(
                    f"aioctx explore: run {runs_done} is not reproducible ({out.kind}): "
                    f"{out.message}. The body must be deterministic given the schedule: "
                    "every choice from a seed, every thread made with aioctx.spawn or "
                    "platform.start_thread, no real-time waits.",
                    pytrace=False,
                )
        if found is None:
            _note(item, s, runs_done, exhausted)
            return
        failure = None
        if found.kind != "timeout":
            left = watch.deadline_left(started)
            failure = shrink(program, found, s.memory, seconds=30.0 if left is None else left)
    _raise_if_failed(item, s, found, failure, s.memory, watch, runs=runs_done)


def _note(item: pytest.Item, s: ExploreSettings, runs: int, exhausted: bool) -> None:
    how = f"{s.strategy}, memory {s.memory}, seed {s.seed}"
    item.user_properties.append(("aioctx_explored", f"{runs} schedules ({how})"))
    if exhausted:
        item.user_properties.append(
            ("aioctx_exhausted", f"every schedule with <= {s.max_preemptions} preemptions")
        )


def _raise_if_failed(
    item: pytest.Function,
    s: ExploreSettings,
    out: RunOutcome,
    failure: Any,
    memory: str,
    watch: _Watch,
    *,
    runs: int = 1,
    replayed: str | None = None,
) -> None:
    from aioctx_verify.stress.controlled import Schedule
    from aioctx_verify.stress.explore import format_trace

    if out.verdict == "pass":
        return
    if out.verdict == "inconclusive" and replayed is not None:
        pytest.fail(
            f"aioctx replay: the schedule no longer fits this test's body ({out.kind}: "
            f"{out.message}); the body changed since it was printed", pytrace=False)
    if out.kind == "timeout":
        lines = [
            f"aioctx explore: run {runs} of {item.nodeid} hung: it did not end within "
            f"{watch.limit:.1f} s ({_TIMEOUT_SHARE:.0%} of the test's timeout); a thread blocks "
            "outside the controlled platform (a real lock, event or sleep?)",
            "controlled threads at the hang:",
            *[f"  {p}" for p in watch.positions],
        ]
        pytest.fail("\n".join(lines), pytrace=False)
    if failure is not None:
        schedule, trace, names = failure.schedule, failure.trace, failure.thread_names
        kind, message, prop = failure.kind, failure.message, failure.prop or out.prop
        shrunk = failure.shrink_summary
    else:
        schedule = replayed or str(Schedule(program_name(item), memory,
                                            tuple(c.token for c in out.decisions)))
        trace, names = out.trace, out.thread_names
        kind, message, prop = out.kind, out.message, out.prop
        shrunk = f"{out.preemptions} preemption(s), {out.steps} step(s)"
    command = replay_command(item, schedule)
    head = (f"aioctx replay of {schedule}" if replayed is not None else
            f"aioctx explore: {s.strategy}, memory {memory}, seed {s.seed}: run {runs} of "
            f"{s.runs} failed")
    props = [("aioctx_schedule", schedule), ("aioctx_seed", str(s.seed)),
             ("aioctx_strategy", "replay" if replayed else s.strategy),
             ("aioctx_memory", memory), ("aioctx_property", prop or "-"),
             ("aioctx_replay", command)]
    item.user_properties.extend(props)
    ours = _ours()  # once per report, not once per step
    mine = tuple(st for st in trace if _users(st.code, ours))
    lines = [
        head,
        f"property: {prop or '-'} ({kind})",
        f"failure:  {message}",
        f"schedule: {schedule}",
        f"replay:   {command}",
        shrunk,
        f"steps in your code ({len(mine)} of {len(trace)}):",
        format_trace(mine, names),
        f"every step ({len(trace)}):",
        format_trace(trace, names),
    ]
    pytest.fail("\n".join(lines), pytrace=False)


def _ours() -> tuple[str, ...]:
    """Folders whose code is not the user's: the package, impl, the suite and threading."""
    import aioctx_verify
    import aioctx_verify.impl
    import aioctx_verify.stress

    return tuple(
        os.path.dirname(m.__file__ or "") + os.sep
        for m in (aioctx_verify, aioctx_verify.impl, aioctx_verify.stress, threading)
    )


def _users(code: Any, ours: tuple[str, ...]) -> bool:
    """Whether a step's code is the user's (not impl's, the suite's or the stdlib's)."""
    return code is not None and not str(code.co_filename).startswith(ours)


# ------------------------------------------------------------------------------------------
# Real threads
# ------------------------------------------------------------------------------------------
def _stress_item(item: pytest.Function) -> None:
    from aioctx_verify.stress.real import Grade, Outcome, Params, Workload, run_workload

    mark = item.get_closest_marker("stress")
    assert mark is not None
    kwargs = dict(mark.kwargs)
    known = {"duration", "noise", "seed", "patience"}
    unknown = sorted(set(kwargs) - known)
    if unknown or mark.args:
        raise AioctxUsageError(
            f"{item.nodeid}: @pytest.mark.stress takes keyword arguments {sorted(known)}; "
            f"got {unknown or list(mark.args)}"
        )
    duration = float(kwargs.get("duration", 1.0))
    patience = float(kwargs.get("patience", 2.0))
    if duration <= 0 or patience <= 0:
        raise AioctxUsageError(f"{item.nodeid}: stress duration and patience must be > 0")
    seed = item.config.getoption("aioctx_seed")
    seed = int(kwargs.get("seed", 0)) if seed is None else seed
    call, fixture = _body(item)

    def run(trial: Trial) -> str:
        if fixture is not None:
            fixture._begin("stress", trial.index, trial.platform, trial)
        try:
            call()
        finally:
            if fixture is not None:
                fixture._end()
        return "ok"

    wl = Workload(
        name=program_name(item),
        description=f"the body of {item.nodeid}",
        run=run,
        outcomes=(Outcome("ok", Grade.ACCEPTABLE, "the body returned"),),
        defaults=Params(threads=1, iothreads=1, rounds=1, seconds=duration),
    )
    r = run_workload(wl, seconds=duration, seed=seed, noise=bool(kwargs.get("noise", True)),
                     patience=patience, trial_timeout=max(10.0, 4 * patience),
                     stop_on_failure=True)
    item.user_properties.append(
        ("aioctx_stressed", f"{r.trials} trials, {r.inconclusive} inconclusive, seed {seed}"))
    if r.verdict != "fail":
        return
    f = r.failure
    lines = [f"aioctx stress: trial {f.trial if f else '?'} of {r.trials} failed "
             f"(seed {seed}, noise {'on' if r.noise else 'off'})"]
    raised = f is not None and f.outcome.startswith("exception:")
    if f is not None:
        lines.append(f"property: {f.prop or '-'} ({'exception' if raised else f.kind})")
        if not raised:
            lines.append(f"failure:  {f.message}")
    lines.extend(f"violation: {v}" for v in r.violations[:5])
    if r.errors:
        lines.append(r.errors[0])  # the first error in full (a traceback when one raised)
        lines.extend(f"error: {e.splitlines()[0]}" for e in r.errors[1:5])
    if f is not None and f.kind in ("hang", "lost-wakeup"):
        for name, stack in list(r.stacks.items())[:8]:
            lines.append(f"--- stack of {name} ---\n{stack}")
    lines.append("real threads do not replay exactly: explore the same body "
                 "(@pytest.mark.explore) for a replayable schedule")
    item.user_properties.append(("aioctx_property", (f.prop if f else None) or "-"))
    pytest.fail("\n".join(lines), pytrace=False)
