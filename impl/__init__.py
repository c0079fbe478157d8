"""aioctx-verify's system under verification: QEMU's AioContext/IOThread event loop.

Two faces over one engine: :mod:`aioctx_verify.impl.qemu` keeps QEMU's C names, this module is the
Pythonic API::

    from . import IOThread, stop_the_world

    with IOThread(name="io0") as it:          # starts; joins on exit
        ctx = it.ctx
        bh = ctx.bh_new(lambda _: print("ran in", it.name))
        bh.schedule()                          # lock-free, from any thread
        with ctx:                              # aio_context_acquire/release
            ...                                # the IOThread is paused here
        with stop_the_world():                 # every IOThread paused
            ...

All concurrency goes through the :class:`Platform` seam (default: :class:`RealPlatform`).
PYTEST_DONT_REWRITE: under pytest, impl keeps the bytecode of its source (mutants).
"""

from ._context import (
    BH,
    AioContext,
    AioHandler,
    ContextStatistics,
    DebugSnapshot,
    EventNotifier,
)
from ._dataplane import BlockRequest, DataplaneDevice, VMState, one_off
from ._errors import (
    AioCtxError,
    BHDeletedError,
    CallbackError,
    ContextClosedError,
    ContextInUseError,
    ContextNotHeldError,
    InvalidCallbackError,
    InvalidFdError,
    IOThreadStateError,
    LockNotHeldError,
    NotifierClosedError,
    NotOwnerError,
    PoolShutdownError,
    TimerFreedError,
    UsageError,
)
from ._iothread import IOThread, live_iothreads, main_context, stop_the_world
from ._lock import LockStatistics, RFifoLock
from ._platform import (
    AtomicCell,
    Fence,
    Ordering,
    Platform,
    ThreadHandle,
    ThreadId,
    TraceEvent,
    Tracer,
)
from ._real import RealPlatform, default_platform
from ._threadpool import ThreadPool, ThreadPoolRequest
from ._timers import SCALE_MS, SCALE_NS, SCALE_US, Clocks, ClockType, QEMUTimer, clocks_for

__all__ = [
    "BH",
    "SCALE_MS",
    "SCALE_NS",
    "SCALE_US",
    "AioContext",
    "AioCtxError",
    "AioHandler",
    "AtomicCell",
    "BHDeletedError",
    "BlockRequest",
    "CallbackError",
    "ClockType",
    "Clocks",
    "ContextClosedError",
    "ContextInUseError",
    "ContextNotHeldError",
    "ContextStatistics",
    "DataplaneDevice",
    "DebugSnapshot",
    "EventNotifier",
    "Fence",
    "IOThread",
    "IOThreadStateError",
    "InvalidCallbackError",
    "InvalidFdError",
    "LockNotHeldError",
    "LockStatistics",
    "NotOwnerError",
    "NotifierClosedError",
    "Ordering",
    "Platform",
    "ThreadHandle",
    "PoolShutdownError",
    "QEMUTimer",
    "RFifoLock",
    "RealPlatform",
    "ThreadId",
    "ThreadPool",
    "ThreadPoolRequest",
    "TimerFreedError",
    "TraceEvent",
    "Tracer",
    "UsageError",
    "VMState",
    "clocks_for",
    "default_platform",
    "live_iothreads",
    "main_context",
    "one_off",
    "stop_the_world",
]
