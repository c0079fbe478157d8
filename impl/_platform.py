"""The concurrency seam: everything impl needs from threads, memory and the OS.

Why it exists: the same AioContext code must run on real threads (fast, for users and
real-thread stress) and under a deterministic controlled scheduler (for schedule exploration
with simulated weak memory, a later part of this project).  Prior art: loom and shuttle keep
the real API of their mock primitives and route every operation through one runtime; we do
the same with a small :class:`Platform` protocol that impl receives at construction.

Rules for impl code:

* No impl module imports ``threading``, ``select``, ``time`` or ``os`` except
  :mod:`aioctx_verify.impl._real` (enforced by ``tests/test_seam.py``).
* Every shared word that is read or written without a lock (the lock-free paths: BH flags,
  ``notify_me``, ``notified``) is an :class:`AtomicCell` with an explicit
  :class:`Ordering`, and every barrier QEMU writes (``smp_mb``/``smp_wmb``/``smp_rmb``) is a
  :meth:`Platform.fence` call.  On the real platform these are plain attribute accesses
  (the GIL orders them sequentially); on a controlled platform each one is a scheduling
  point and may be reordered as the chosen memory model allows.
* Trace events go through :attr:`Platform.tracer`; when it is ``None`` an emission costs
  one attribute load and one ``is None`` test.  The event type, :data:`Tracer` and
  :data:`ThreadId` are the shared vocabulary of :mod:`aioctx_verify.vocab` (re-exported here).
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from aioctx_verify.vocab import ThreadId, TraceEvent, Tracer

__all__ = [
    "POLLERR",
    "POLLHUP",
    "POLLIN",
    "POLLNVAL",
    "POLLOUT",
    "AtomicCell",
    "Condition",
    "Fence",
    "Mutex",
    "Ordering",
    "Platform",
    "Poller",
    "RawNotifier",
    "ThreadHandle",
    "ThreadId",
    "TraceEvent",
    "Tracer",
    "peek_per_platform",
    "per_platform",
]

T = TypeVar("T")

# poll(2) event bits; the values are Linux's and are what the real platform passes through.
POLLIN = 0x001
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010
POLLNVAL = 0x020


class Ordering(enum.Enum):
    """C11 memory orderings for atomic operations."""

    RELAXED = "relaxed"
    ACQUIRE = "acquire"
    RELEASE = "release"
    ACQ_REL = "acq_rel"
    SEQ_CST = "seq_cst"


class Fence(enum.Enum):
    """QEMU's barriers: ``smp_mb`` (full), ``smp_wmb`` (store-store), ``smp_rmb`` (load-load)."""

    MB = "smp_mb"
    WMB = "smp_wmb"
    RMB = "smp_rmb"


class AtomicCell(Protocol[T]):
    """One shared word accessed without a lock.  ``name`` labels it in traces."""

    name: str

    def load(self, order: Ordering = Ordering.SEQ_CST) -> T: ...

    def store(self, value: T, order: Ordering = Ordering.SEQ_CST) -> None: ...

    def exchange(self, value: T, order: Ordering = Ordering.SEQ_CST) -> T: ...

    def compare_exchange(self, expected: T, value: T, order: Ordering = Ordering.SEQ_CST) -> T:
        """Store ``value`` if the cell holds ``expected``; return the old value either way."""
        ...

    def fetch_add(self, delta: int, order: Ordering = Ordering.SEQ_CST) -> T:
        """Add ``delta`` (integer cells only); return the old value."""
        ...


class Mutex(Protocol):
    """A non-recursive mutual-exclusion lock (``QemuMutex``)."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> bool: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class Condition(Protocol):
    """A condition variable bound to one :class:`Mutex` (``QemuCond``).  ``wait`` and
    ``notify`` / ``notify_all`` are called with that mutex held (as ``threading.Condition``
    requires; every platform raises ``RuntimeError`` otherwise)."""

    def wait(self, timeout: float | None = None) -> bool: ...

    def notify(self, n: int = 1) -> None: ...

    def notify_all(self) -> None: ...

    def __enter__(self) -> bool: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class ThreadHandle(Protocol):
    """A started platform thread."""

    name: str

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


class RawNotifier(Protocol):
    """An ``EventNotifier`` at OS level: an eventfd, or a pipe pair as fallback.

    ``set`` makes ``read_fd`` readable (several sets coalesce); ``test_and_clear`` drains it
    and tells whether it was set.  Both are safe from any thread, and both are system calls:
    a full fence for the calling thread (the kernel's eventfd counter or pipe is taken under
    a lock, which orders every earlier access of the thread before it and every later one
    after it); the controlled platform models each as one (``smp_mb``; under c11 an SC
    fence).
    """

    read_fd: int
    write_fd: int

    def set(self) -> None: ...

    def test_and_clear(self) -> bool: ...

    def close(self) -> None: ...


class Poller(Protocol):
    """A poll set kept across iterations (``register`` replaces an fd's events)."""

    def register(self, fd: int, events: int) -> None: ...

    def unregister(self, fd: int) -> None: ...

    def poll(self, timeout_ns: int) -> Sequence[tuple[int, int]]:
        """Wait up to ``timeout_ns`` (-1: forever, 0: don't block); return ``(fd, revents)``.

        A system call, so a full fence for the calling thread, as a notifier's operations
        are (see :class:`RawNotifier`)."""
        ...


class Platform(Protocol):
    """The seam.  See the module docstring for the rules impl follows."""

    #: Trace listener; ``None`` when nobody listens.
    tracer: Tracer | None

    def new_id(self) -> int:
        """A fresh small integer for naming contexts, BHs, timers (stable per platform)."""
        ...

    # -- threads -----------------------------------------------------------------------
    def start_thread(self, target: Callable[[], None], name: str) -> ThreadHandle: ...

    def current_thread(self) -> ThreadId: ...

    def main_thread(self) -> ThreadId: ...

    def yield_now(self) -> None:
        """Let other threads run before this one continues (a scheduling hint, no wait).

        impl calls it where it would otherwise spin on a peer that is mid-operation.
        """
        ...

    # -- locks ---------------------------------------------------------------------------
    def mutex(self, name: str = "") -> Mutex: ...

    def condition(self, mutex: Mutex) -> Condition: ...

    # -- lock-free memory ------------------------------------------------------------------
    def atomic(self, initial: T, name: str = "") -> AtomicCell[T]: ...

    def fence(self, kind: Fence) -> None: ...

    # -- OS --------------------------------------------------------------------------------
    def notifier(self) -> RawNotifier: ...

    def poller(self) -> Poller: ...

    def fd_is_open(self, fd: int) -> bool: ...

    def monotonic_ns(self) -> int:
        """A clock that never goes back (QEMU_CLOCK_REALTIME's source)."""
        ...

    def wall_ns(self) -> int:
        """Wall-clock time since the epoch (QEMU_CLOCK_HOST's source); may jump."""
        ...


class Cell(Generic[T]):
    """Helper base for platforms: a named value (not itself atomic)."""

    __slots__ = ("name", "value")

    def __init__(self, value: T, name: str) -> None:
        self.value = value
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}={self.value!r}>"


#: Per-platform state of platforms that take no attributes (no ``__dict__``).  Its values
#: refer back to their platform (through its mutexes and cells), so an entry keeps its
#: platform alive: only such platforms land here.
_FALLBACK: weakref.WeakKeyDictionary[object, dict[str, object]] = weakref.WeakKeyDictionary()


def _state(platform: object) -> dict[str, object]:
    d = getattr(platform, "__dict__", None)
    if isinstance(d, dict):
        return d
    return _FALLBACK.setdefault(platform, {})


def per_platform(platform: object, key: str, make: Callable[[], T]) -> T:
    """The state ``key`` of ``platform`` (impl's clocks, the IOThread registry), made by
    ``make`` on first use, safe from any thread (``dict.setdefault``: the first one made
    wins).  A platform with a ``published(state, made)`` method hears of every use: made
    by this call (a release of what ``make`` wrote) or found (an acquire of it).

    Kept on the platform object itself, not in a module-level weak dictionary keyed by
    platform: the state holds the platform's own mutexes and cells, which refer back to
    it, so such a dictionary's values kept every platform alive (a controlled run's whole
    trace with it: a 1,000-seed nightly run grew past 20 GB).  On the object, platform and
    state are one garbage cycle that the collector frees together.
    """
    d = _state(platform)
    got = d.get(key)
    made = False
    if got is None:
        mine = make()
        got = d.setdefault(key, mine)
        made = got is mine
    # The dictionary publishes the state whole (a single atomic operation, as an RCU
    # pointer store would); a platform that tracks happens-before is told so.
    published = getattr(platform, "published", None)
    if published is not None:
        published(got, made)
    return got  # type: ignore[return-value]


def peek_per_platform(platform: object, key: str) -> object | None:
    """The state ``key`` of ``platform`` if it was made (never makes it)."""
    d = getattr(platform, "__dict__", None)
    if isinstance(d, dict):
        return d.get(key)
    got = _FALLBACK.get(platform)
    return None if got is None else got.get(key)
