"""The seam: impl touches concurrency only through the Platform, and the lock-free paths
make every ordering point visible there (the controlled scheduler depends on both)."""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest

from aioctx_verify import impl
from aioctx_verify.impl import Fence, Ordering, RealPlatform
from aioctx_verify.impl import qemu as q
from aioctx_verify.impl._platform import (
    Condition,
    Mutex,
    Poller,
    RawNotifier,
    ThreadHandle,
    ThreadId,
)

T = TypeVar("T")

IMPL = pathlib.Path(impl.__file__).parent
FORBIDDEN = {
    "threading",
    "_thread",
    "select",
    "selectors",
    "time",
    "os",
    "signal",
    "socket",
    "asyncio",
    "queue",
    "concurrent",
    "multiprocessing",
}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_real_platform_imports_os_threading_select_time() -> None:
    modules = sorted(IMPL.glob("*.py"))
    assert len(modules) >= 10
    offenders = {p.name: sorted(_imports(p) & FORBIDDEN) for p in modules if p.name != "_real.py"}
    assert {k: v for k, v in offenders.items() if v} == {}
    # ... and the real platform does use them (the check is not vacuous).
    assert {"threading", "os", "select", "time"} <= _imports(IMPL / "_real.py")


def test_the_check_catches_a_forbidden_import(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "_bad.py"
    bad.write_text("import os.path\nfrom threading import Lock\nfrom . import _x\n")
    assert _imports(bad) & FORBIDDEN == {"os", "threading"}


class RecordingPlatform:
    """Wraps the real platform and logs every atomic, fence and notifier operation."""

    def __init__(self) -> None:
        self._real = RealPlatform()
        self.tracer = None
        self.log: list[tuple[str, ...]] = []
        self.recording = False

    def _rec(self, *entry: str) -> None:
        if self.recording:
            self.log.append(entry)

    def new_id(self) -> int:
        return self._real.new_id()

    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle:
        return self._real.start_thread(target, name)

    def current_thread(self) -> ThreadId:
        return self._real.current_thread()

    def main_thread(self) -> ThreadId:
        return self._real.main_thread()

    def yield_now(self) -> None:
        self._rec("yield")
        self._real.yield_now()

    def mutex(self, name: str = "") -> Mutex:
        return self._real.mutex(name)

    def condition(self, mutex: Mutex) -> Condition:
        return self._real.condition(mutex)

    def atomic(self, initial: T, name: str = "") -> Any:
        real = self._real.atomic(initial, name)
        plat = self

        class Cell:
            def __init__(self) -> None:
                self.name = name

            def load(self, order: Ordering = Ordering.SEQ_CST) -> Any:
                plat._rec("load", name, order.value)
                return real.load(order)

            def store(self, v: Any, order: Ordering = Ordering.SEQ_CST) -> None:
                plat._rec("store", name, order.value)
                real.store(v, order)

            def exchange(self, v: Any, order: Ordering = Ordering.SEQ_CST) -> Any:
                plat._rec("exchange", name, order.value)
                return real.exchange(v, order)

            def compare_exchange(self, e: Any, v: Any, order: Ordering = Ordering.SEQ_CST) -> Any:
                plat._rec("cmpxchg", name, order.value)
                return real.compare_exchange(e, v, order)

            def fetch_add(self, d: int, order: Ordering = Ordering.SEQ_CST) -> Any:
                plat._rec("fetch_add", name, order.value)
                return real.fetch_add(d, order)

        return Cell()

    def fence(self, kind: Fence) -> None:
        self._rec("fence", kind.value)

    def notifier(self) -> RawNotifier:
        raw = self._real.notifier()
        plat = self

        class N:
            read_fd = raw.read_fd
            write_fd = raw.write_fd

            def set(self) -> None:
                plat._rec("notifier_set")
                raw.set()

            def test_and_clear(self) -> bool:
                plat._rec("notifier_clear")
                return raw.test_and_clear()

            def close(self) -> None:
                raw.close()

        return N()

    def poller(self) -> Poller:
        real = self._real.poller()
        plat = self

        class P:
            def register(self, fd: int, ev: int) -> None:
                real.register(fd, ev)

            def unregister(self, fd: int) -> None:
                real.unregister(fd)

            def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
                plat._rec("poll", "block" if timeout_ns else "nonblock")
                return real.poll(timeout_ns)

        return P()

    def fd_is_open(self, fd: int) -> bool:
        return self._real.fd_is_open(fd)

    def monotonic_ns(self) -> int:
        return self._real.monotonic_ns()

    def wall_ns(self) -> int:
        return self._real.wall_ns()


def _ops(log: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(e) for e in log]


def test_bh_schedule_is_exchange_then_full_fence_then_notify_me_read() -> None:
    plat = RecordingPlatform()
    ctx = q.aio_context_new(plat)
    bh = q.aio_bh_new(ctx, lambda _: None, None)
    plat.recording = True
    q.qemu_bh_schedule(bh)
    q.qemu_bh_schedule(bh)  # coalesced: no second notify
    plat.recording = False
    assert _ops(plat.log) == [
        "store bh.idle relaxed",
        "exchange bh.scheduled seq_cst",
        "fence smp_mb",
        "load ctx.notify_me relaxed",
        "store bh.idle relaxed",
        "exchange bh.scheduled seq_cst",
    ]
    assert q.aio_poll(ctx, False) is True


def test_blocking_poll_publishes_notify_me_before_scanning_bhs() -> None:
    plat = RecordingPlatform()
    ctx = q.aio_context_new(plat)
    bh = q.aio_bh_new(ctx, lambda _: None, None)
    q.qemu_bh_schedule(bh)
    plat.recording = True
    assert q.aio_poll(ctx, True) is True
    plat.recording = False
    # The context lock's owner cell (one relaxed load: "do I hold it?") is not part of the
    # wake-up protocol.
    ops = [op for op in _ops(plat.log) if ".lock.owner " not in op]
    first_bh_read = next(i for i, op in enumerate(ops) if "bh.scheduled" in op)
    assert ops[:2] == ["fetch_add ctx.notify_me relaxed", "fence smp_mb"]
    assert first_bh_read > 1
    # notify_me is dropped again after the poll and before the wake-up is accepted.
    poll_at = ops.index("poll nonblock")  # a BH was pending: timeout 0
    assert ops[poll_at + 1 : poll_at + 3] == [
        "fetch_add ctx.notify_me release",
        "exchange ctx.notified seq_cst",
    ]


def test_notify_while_polling_sets_notifier_before_notified() -> None:
    plat = RecordingPlatform()
    ctx = q.aio_context_new(plat)
    ctx.notify_me.store(2)  # as if a thread were blocked in aio_poll
    plat.recording = True
    q.aio_notify(ctx)
    plat.recording = False
    assert _ops(plat.log) == [
        "fence smp_mb",
        "load ctx.notify_me relaxed",
        "notifier_set",
        "exchange ctx.notified seq_cst",
    ]
    ctx.notify_me.store(0)
    plat.log.clear()
    plat.recording = True
    q.aio_notify_accept(ctx)
    plat.recording = False
    assert _ops(plat.log) == ["exchange ctx.notified seq_cst", "notifier_clear"]


def test_whole_impl_runs_on_an_injected_platform() -> None:
    plat = RecordingPlatform()
    it = q.iothread_new(plat)
    try:
        ctx = q.iothread_get_aio_context(it)
        assert ctx.platform is plat
        done: list[int] = []
        ev = plat.atomic(False, "test.flag")  # any cell works as a flag
        q.aio_bh_schedule_oneshot(ctx, lambda _: (done.append(1), ev.store(True)), None)
        with ctx.acquired(timeout=10):
            pass  # the acquire waits for an iteration boundary, so the oneshot ran
        deadline = plat.monotonic_ns() + 10_000_000_000
        while not ev.load() and plat.monotonic_ns() < deadline:
            with ctx.acquired(timeout=10):
                pass
        assert done == [1]
    finally:
        q.iothread_join(it)


@pytest.mark.parametrize("use_eventfd", [True, False])
def test_real_notifier_coalesces_and_clears(use_eventfd: bool) -> None:
    n = RealPlatform(use_eventfd=use_eventfd).notifier()
    try:
        assert n.test_and_clear() is False
        n.set()
        n.set()
        assert n.test_and_clear() is True
        assert n.test_and_clear() is False
    finally:
        n.close()
