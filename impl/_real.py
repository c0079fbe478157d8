"""The real platform: ``threading``, ``os.eventfd`` (pipe fallback), ``select.poll``, clocks.

This is the only impl module that touches ``threading``, ``select``, ``time`` and ``os``
(``tests/test_seam.py`` enforces it).  It is deliberately thin: the GIL already makes single
attribute loads and stores atomic and sequentially consistent, so loads and stores are plain
attribute accesses and fences are no-ops; read-modify-write operations take one
platform-wide lock.  Consequence, which impl respects: a plain ``store`` that races an RMW on
the same cell may land between the RMW's read and write, so wherever a store can race an
RMW and the difference matters (``notified``, an idle schedule), impl uses an RMW instead.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ._platform import (
    Cell,
    Condition,
    Fence,
    Mutex,
    Ordering,
    Platform,
    Poller,
    RawNotifier,
    ThreadHandle,
    ThreadId,
    Tracer,
)

__all__ = ["RealPlatform", "default_platform"]

T = TypeVar("T")

_SEQ = Ordering.SEQ_CST


class _RealAtomic(Cell[T]):
    __slots__ = ("_rmw",)

    def __init__(self, value: T, name: str, rmw: threading.Lock) -> None:
        self.value = value
        self.name = name
        self._rmw = rmw

    def load(self, order: Ordering = _SEQ) -> T:
        return self.value

    def store(self, value: T, order: Ordering = _SEQ) -> None:
        self.value = value

    def exchange(self, value: T, order: Ordering = _SEQ) -> T:
        with self._rmw:
            old = self.value
            self.value = value
        return old

    def compare_exchange(self, expected: T, value: T, order: Ordering = _SEQ) -> T:
        with self._rmw:
            old = self.value
            if old == expected:
                self.value = value
        return old

    def fetch_add(self, delta: int, order: Ordering = _SEQ) -> T:
        with self._rmw:
            old = self.value
            self.value = old + delta  # type: ignore[operator, assignment]
        return old


class _EventFdNotifier:
    """Linux eventfd: one fd, an 8-byte counter; several sets coalesce."""

    __slots__ = ("read_fd", "write_fd")

    def __init__(self) -> None:
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.read_fd = fd
        self.write_fd = fd

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError):  # counter saturated: it is set already
            os.eventfd_write(self.write_fd, 1)

    def test_and_clear(self) -> bool:
        try:
            os.eventfd_read(self.read_fd)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        os.close(self.read_fd)


class _PipeNotifier:
    """The fallback where eventfd is missing: a non-blocking pipe pair."""

    __slots__ = ("read_fd", "write_fd")

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        for fd in (self.read_fd, self.write_fd):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError):  # pipe full: a read is pending anyway
            os.write(self.write_fd, b"\x01")

    def test_and_clear(self) -> bool:
        got = False
        while True:
            try:
                data = os.read(self.read_fd, 512)
            except BlockingIOError:
                return got
            if not data:
                return got
            got = True

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class _RealPoller:
    __slots__ = ("_poll",)

    def __init__(self) -> None:
        self._poll = select.poll()

    def register(self, fd: int, events: int) -> None:
        self._poll.register(fd, events)

    def unregister(self, fd: int) -> None:
        with contextlib.suppress(KeyError):
            self._poll.unregister(fd)

    def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
        if timeout_ns < 0:
            return self._poll.poll()
        # QEMU's qemu_timeout_ns_to_ms rounds up so a timer is never polled for too early.
        return self._poll.poll(-(-timeout_ns // 1_000_000))


class RealPlatform:
    """Real threads and file descriptors.

    Args:
        use_eventfd: use ``os.eventfd`` for notifiers when available (default); ``False``
            forces the pipe fallback (tests use it to cover both).
    """

    def __init__(self, *, use_eventfd: bool = True) -> None:
        self.tracer: Tracer | None = None
        self._rmw = threading.Lock()
        self._use_eventfd = use_eventfd and hasattr(os, "eventfd")
        self._ids = itertools.count(1)
        self._main = ThreadId(threading.main_thread().ident or 0)
        # Bound for speed on hot paths (aio_context_acquire reads it on every call; every
        # BH, one-shots included, takes an id): the methods below say the same in Python.
        self.current_thread: Callable[[], ThreadId] = threading.get_ident  # type: ignore[assignment]
        self.new_id: Callable[[], int] = self._ids.__next__  # type: ignore[method-assign]

    def __repr__(self) -> str:
        kind = "eventfd" if self._use_eventfd else "pipe"
        return f"<RealPlatform notifiers={kind}>"

    def new_id(self) -> int:
        return next(self._ids)

    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        return t

    def yield_now(self) -> None:
        os.sched_yield()  # releases the GIL, so a thread waiting for it runs first

    def main_thread(self) -> ThreadId:
        return self._main

    def mutex(self, name: str = "") -> Mutex:
        return threading.Lock()

    def condition(self, mutex: Mutex) -> Condition:
        return threading.Condition(mutex)  # type: ignore[arg-type]

    def atomic(self, initial: T, name: str = "") -> _RealAtomic[T]:
        return _RealAtomic(initial, name, self._rmw)

    def fence(self, kind: Fence) -> None:
        """No-op: under the GIL Python's memory is sequentially consistent."""

    def notifier(self) -> RawNotifier:
        if self._use_eventfd:
            return _EventFdNotifier()
        return _PipeNotifier()

    def poller(self) -> Poller:
        return _RealPoller()

    def fd_is_open(self, fd: int) -> bool:
        try:
            os.fstat(fd)
        except OSError as e:
            if e.errno in (errno.EBADF, errno.EINVAL):
                return False
            raise
        return True

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        return time.time_ns()


_default: Platform | None = None
_default_lock = threading.Lock()


def default_platform() -> Platform:
    """The process-wide real platform that impl uses when none is passed in."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = RealPlatform()
    return _default
