"""A dataplane-like device, VM run-state listeners, and one-off context operations.

Prior art: QEMU hw/block/dataplane/virtio-blk.c of QEMU 2.1-2.2 and the VM change-state
handlers that stop/start it around migration (shared/reference/qemu-semantics.md 8.5-8.6).

The device models virtio-blk's data path without a guest: a *guest* thread pushes requests
onto the available ring and kicks the host notifier (ioeventfd); the handler, registered in
the IOThread's context as an *external* event notifier, pops them and submits each to the
context's thread pool (the "disk"); completion runs as a BH in the IOThread, puts the request
on the used ring and sets the guest notifier (irqfd).

Stop (VM stopped, e.g. migration hand-over), from any thread: acquire the IOThread's
context, unregister the host notifier (no new requests are taken), drain the requests in
flight by polling the context, release.  Requests still on the available ring stay there.
Start: register the handler again and kick the host notifier once, so requests queued while
stopped are processed.  Hence: no request is lost and none completes twice across stop/start,
which ``tests/test_dataplane.py`` checks under concurrent guest traffic.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._context import AioContext, EventNotifier
from ._errors import check_callable
from ._iothread import IOThread
from ._platform import Platform, TraceEvent
from ._real import default_platform
from ._timers import clocks_for

__all__ = ["BlockRequest", "DataplaneDevice", "VMState", "one_off"]

R = TypeVar("R")


class VMState:
    """The VM run state with change listeners (``qemu_add_vm_change_state_handler``).

    Stopping freezes the VIRTUAL clock, as ``vm_stop`` does; listeners are called in
    registration order on start and in reverse order on stop.
    """

    def __init__(self, platform: Platform | None = None) -> None:
        self._p = platform or default_platform()
        self.running = True
        self._listeners: list[Callable[[bool, str], None]] = []

    def add_change_state_handler(self, cb: Callable[[bool, str], None]) -> None:
        check_callable(cb, "VM change-state handler")
        self._listeners.append(cb)

    def remove_change_state_handler(self, cb: Callable[[bool, str], None]) -> None:
        self._listeners.remove(cb)

    def stop(self, reason: str = "migration") -> None:
        if not self.running:
            return
        self.running = False
        clocks_for(self._p).stop_virtual()
        for cb in reversed(self._listeners):
            cb(False, reason)

    def start(self, reason: str = "resume") -> None:
        if self.running:
            return
        self.running = True
        clocks_for(self._p).start_virtual()
        for cb in list(self._listeners):
            cb(True, reason)


@dataclass(eq=False)
class BlockRequest:
    """One guest request; ``completions`` must end at exactly 1."""

    id: int
    sector: int = 0
    data: bytes = b""
    ret: int | None = None
    completions: int = 0
    completed_in: list[int] = field(default_factory=list)  # platform thread ids


def _default_backend(req: BlockRequest) -> int:
    return len(req.data)


class DataplaneDevice:
    """A virtio-blk-dataplane-like device served by one IOThread.

    Args:
        iothread: runs the request handler and completions.
        vm: when given, the device stops and starts with it.
        backend: the blocking "disk" operation run on the thread pool; returns ret.
    """

    def __init__(
        self,
        iothread: IOThread,
        vm: VMState | None = None,
        *,
        backend: Callable[[BlockRequest], int] = _default_backend,
    ) -> None:
        p = iothread.ctx.platform
        self._p = p
        self.iothread = iothread
        self.ctx: AioContext = iothread.ctx
        self.backend = backend
        self.host_notifier = EventNotifier(p)
        self.guest_notifier = EventNotifier(p)
        self._vq = p.mutex("dataplane.vq")
        self._avail: deque[BlockRequest] = deque()
        self._used: list[BlockRequest] = []
        #: Requests ever put on the available ring (under _vq): kick and process events
        #: carry it, so a monitor can tell which kicks a handler run has consumed.
        self._submitted = 0
        self.started = False
        self._transition = False
        self.inflight = 0  # touched only under self.ctx
        self.completed = 0
        if vm is not None:
            vm.add_change_state_handler(self._vm_state_change)

    # -- guest side (any thread) -------------------------------------------------------------
    def guest_submit(self, req: BlockRequest) -> None:
        """Put a request on the available ring and kick the device (``virtio_queue_notify``)."""
        with self._vq:
            self._avail.append(req)
            self._submitted += 1
            seq = self._submitted
        self.host_notifier.set()
        tr = self._p.tracer
        if tr is not None:  # after the kick: from here on the handler must take req
            me = self._p.current_thread()
            tr(TraceEvent("dp_kick", me, self.ctx.id, self.host_notifier.id, str(seq)))

    def guest_collect(self) -> list[BlockRequest]:
        """Take completed requests off the used ring (the guest's interrupt handler)."""
        self.guest_notifier.test_and_clear()
        with self._vq:
            out, self._used = self._used, []
        return out

    def queued(self) -> int:
        """Requests on the available ring, not yet taken by the handler; safe from any
        thread (the ring is read under its lock, as the guest and the handler change it)."""
        with self._vq:
            return len(self._avail)

    # -- host side ---------------------------------------------------------------------------
    def start(self) -> None:
        """Attach to the IOThread and process whatever is queued (idempotent)."""
        if self.started or self._transition:
            return
        self._transition = True
        try:
            with self.ctx:
                self.ctx.set_event_notifier(
                    self.host_notifier, self._handle_notify, is_external=True
                )
            self.host_notifier.set()  # requests queued while stopped
            self.started = True
            tr = self._p.tracer
            if tr is not None:  # the ring as the start's own kick left it
                me = self._p.current_thread()
                what = str(self._submitted)
                tr(TraceEvent("dp_start", me, self.ctx.id, self.host_notifier.id, what))
        finally:
            self._transition = False

    def stop(self) -> None:
        """Detach: no new requests are taken; in-flight ones finish first (idempotent)."""
        if not self.started or self._transition:
            return
        self._transition = True
        tr = self._p.tracer
        if tr is not None:  # kicks from here on wait for the next start
            me = self._p.current_thread()
            tr(TraceEvent("dp_stop", me, self.ctx.id, self.host_notifier.id))
        try:
            with self.ctx:
                self.ctx.set_event_notifier(self.host_notifier, None)
                while self.inflight:
                    self.ctx.aio_poll(True)
            self.started = False
        finally:
            self._transition = False

    def _vm_state_change(self, running: bool, reason: str) -> None:
        if running:
            self.start()
        else:
            self.stop()

    def _handle_notify(self, n: EventNotifier) -> None:
        n.test_and_clear()
        with self._vq:
            batch = list(self._avail)
            self._avail.clear()
            tr = self._p.tracer
            if tr is not None:  # under _vq: every request counted so far is in batch
                me = self._p.current_thread()
                what = str(self._submitted)
                tr(TraceEvent("dp_process", me, self.ctx.id, self.host_notifier.id, what))
        pool = self.ctx.thread_pool()
        for req in batch:
            self.inflight += 1
            pool.submit(self.backend, req, self._complete, req)

    def _complete(self, req: Any, ret: int) -> None:
        assert isinstance(req, BlockRequest)
        self.inflight -= 1
        self.completed += 1
        req.ret = ret
        req.completions += 1
        req.completed_in.append(self._p.current_thread())
        with self._vq:
            self._used.append(req)
        self.guest_notifier.set()

    def close(self) -> None:
        """Stop and free the notifiers."""
        self.stop()
        self.host_notifier.cleanup()
        self.guest_notifier.cleanup()


def one_off(ctx: AioContext, fn: Callable[[], R], *, timeout: float | None = None) -> R:
    """Run ``fn()`` while holding ``ctx`` (a one-off operation such as a block-migration
    snapshot of a device served by an IOThread): acquire, call, release."""
    check_callable(fn, "one-off operation")
    if not ctx.acquire(timeout):
        raise TimeoutError(f"one-off operation: {ctx.name} not acquired within {timeout} s")
    try:
        return fn()
    finally:
        ctx.release()
