"""Dataplane device, VM stop/start (simulated migration), one-off operations, frozen clock.

Reference: shared/reference/qemu-semantics.md 8.5-8.6.  The device's completions run as
thread-pool completion BHs in its IOThread; ``stop`` (from the main thread) acquires the
context, detaches the host notifier and drains the requests in flight by polling the
context itself, so those completions run in the stopping thread *while it holds the
context* (as QEMU's ``bdrv_drain_all`` inside ``bdrv_set_aio_context`` does).
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aioctx_verify.impl import (
    AioContext,
    BlockRequest,
    ClockType,
    DataplaneDevice,
    IOThread,
    RealPlatform,
    VMState,
    clocks_for,
    one_off,
)
from aioctx_verify.impl import qemu as q
from tests.conftest import WAIT

# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


class RecordingDevice(DataplaneDevice):
    """Records, for every completion, the thread, whether it held the context, and
    whether a stop/start transition (the drain) was under way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[tuple[int, int, bool, bool]] = []

    def _complete(self, req: Any, ret: int) -> None:
        self.records.append(
            (req.id, threading.get_ident(), self.ctx.held_by_me(), self._transition)
        )
        super()._complete(req, ret)


def collect(dev: DataplaneDevice, n: int, timeout: float = WAIT) -> list[BlockRequest]:
    """The guest's interrupt loop: take completed requests until ``n`` were seen.

    Sleeps on the guest notifier's fd (the irqfd), so every wait is a real, bounded wait.
    """
    got: list[BlockRequest] = []
    deadline = time.monotonic() + timeout
    fd = dev.guest_notifier.fd
    while True:
        got.extend(dev.guest_collect())
        if len(got) >= n:
            return got
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {n} requests completed within {timeout} s"
        select.select([fd], [], [], left)


def barrier(ctx: AioContext) -> None:
    """Wait until the IOThread of ``ctx`` ran a BH scheduled now (one full iteration)."""
    done = threading.Event()
    ctx.bh_schedule_oneshot(lambda _: done.set())
    assert done.wait(WAIT), f"{ctx.name} did not run a BH in time"


def make_requests(n: int, start: int = 0) -> list[BlockRequest]:
    return [BlockRequest(id=i, sector=i, data=b"x" * (i % 7)) for i in range(start, start + n)]


def check_all_once(reqs: list[BlockRequest], got: list[BlockRequest]) -> None:
    assert len(got) == len(reqs), "a request was lost or completed twice"
    assert {id(r) for r in got} == {id(r) for r in reqs}
    for r in reqs:
        assert r.completions == 1, f"request {r.id} completed {r.completions} times"
        assert len(r.completed_in) == 1
        assert r.ret == len(r.data)


@pytest.fixture
def iothread(platform: RealPlatform, iothreads: list[IOThread]) -> IOThread:
    it = IOThread(platform, name="dataplane").start()
    iothreads.append(it)
    return it


@pytest.fixture
def vm(platform: RealPlatform) -> Iterator[VMState]:
    v = VMState(platform)
    yield v
    # Leave the clock as we found it, whatever the test did.
    v.start()
    clocks_for(platform).start_virtual()
    assert clocks_for(platform).virtual_running()


@pytest.fixture
def device(iothread: IOThread, vm: VMState) -> Iterator[RecordingDevice]:
    dev = RecordingDevice(iothread, vm)
    dev.start()
    yield dev
    vm.remove_change_state_handler(dev._vm_state_change)
    dev.close()
    assert iothread.errors == [], iothread.errors


# ---------------------------------------------------------------------------------------
# plain traffic
# ---------------------------------------------------------------------------------------


def test_requests_complete_in_iothread(device: RecordingDevice, iothread: IOThread) -> None:
    reqs = make_requests(500)
    guest = threading.Thread(target=lambda: [device.guest_submit(r) for r in reqs], name="guest")
    guest.start()
    guest.join(WAIT)
    assert not guest.is_alive()
    got = collect(device, len(reqs))
    check_all_once(reqs, got)
    assert all(r.completed_in == [iothread.thread_id] for r in reqs)
    assert all(held for _i, _t, held, _tr in device.records)
    barrier(iothread.ctx)
    assert device.completed == len(reqs)
    assert device.guest_collect() == []


# ---------------------------------------------------------------------------------------
# stop / start (migration) under guest traffic
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2000])
def test_stop_start_cycles_lose_nothing(
    device: RecordingDevice, iothread: IOThread, vm: VMState, n: int
) -> None:
    reqs = make_requests(n)
    batch = 50
    cycles = [0]
    cond = threading.Condition()
    guest_error: list[BaseException] = []

    def guest() -> None:
        try:
            for k in range(0, n, batch):
                for r in reqs[k : k + batch]:
                    device.guest_submit(r)
                # Pace the guest so its submissions interleave with many stop/start cycles.
                with cond:
                    seen = cycles[0]
                    if not cond.wait_for(lambda s=seen: cycles[0] > s, WAIT):
                        raise TimeoutError("main thread stopped cycling")
        except BaseException as e:
            guest_error.append(e)

    g = threading.Thread(target=guest, name="guest")
    g.start()
    main = threading.get_ident()
    try:
        while g.is_alive() or cycles[0] < 10:
            vm.stop()
            assert not vm.running and not device.started
            # Stop drained everything the device had taken; nothing new is taken.
            with iothread.ctx.acquired(timeout=WAIT):
                assert device.inflight == 0
            vm.start()
            assert device.started
            with cond:
                cycles[0] += 1
                cond.notify_all()
    finally:
        g.join(WAIT)
    assert not g.is_alive()
    assert guest_error == []
    assert vm.running
    got = collect(device, n)
    check_all_once(reqs, got)
    assert cycles[0] >= n // batch
    # Where completions ran: the IOThread, or the main thread while it drained in stop().
    for _id, thread, held, transition in device.records:
        assert held, "a completion ran without its thread holding the context"
        if thread != iothread.thread_id:
            assert thread == main and transition, "completion outside the IOThread and drain"
    assert len(device.records) == n
    barrier(iothread.ctx)
    assert device.completed == n and device.inflight == 0
    assert device.queued() == 0
    assert device.guest_collect() == []


def test_requests_submitted_while_stopped_wait_for_start(
    device: RecordingDevice, iothread: IOThread, vm: VMState
) -> None:
    calls: list[int] = []
    device.backend = lambda r: calls.append(r.id) or len(r.data)
    vm.stop()
    reqs = make_requests(10)
    for r in reqs:
        device.guest_submit(r)
    # Give the IOThread several iterations: it must not take the requests.
    for _ in range(3):
        barrier(iothread.ctx)
    assert device.queued() == 10
    assert calls == [] and device.completed == 0
    assert device.guest_collect() == []
    vm.start()
    got = collect(device, 10)
    check_all_once(reqs, got)
    assert sorted(calls) == [r.id for r in reqs]
    assert all(r.completed_in == [iothread.thread_id] for r in reqs)


def test_stop_drains_inflight_requests(
    device: RecordingDevice, iothread: IOThread, vm: VMState
) -> None:
    gate = threading.Event()
    entered = threading.Event()

    def slow_disk(r: BlockRequest) -> int:
        entered.set()
        assert gate.wait(WAIT)
        return len(r.data)

    device.backend = slow_disk
    reqs = make_requests(3)
    main = threading.get_ident()
    try:
        for r in reqs:
            device.guest_submit(r)
        assert entered.wait(WAIT)  # at least one request is on the "disk"
        # Hold the context: the IOThread can no longer run completions, so whatever is in
        # flight now can only be completed by stop's drain.
        with iothread.ctx.acquired(timeout=WAIT):
            inflight = device.inflight
            assert inflight >= 1
            gate.set()
            vm.stop()
            assert device.inflight == 0
            assert device.completed == inflight
            assert not device.started
            drained = [rec for rec in device.records]
        assert len(drained) == inflight
        assert all(t == main and held and tr for _i, t, held, tr in drained)
        # Anything not yet taken stayed on the ring and is served after start.
        assert device.completed + device.queued() == len(reqs)
    finally:
        gate.set()
    vm.start()
    got = collect(device, len(reqs))
    check_all_once(reqs, got)


def test_stop_and_start_are_idempotent(device: RecordingDevice, vm: VMState) -> None:
    device.stop()
    device.stop()
    assert not device.started
    device.start()
    device.start()
    assert device.started
    assert device.ctx.statistics().handlers == 1  # the host notifier, registered once
    vm.stop()
    vm.stop()
    assert device.ctx.statistics().handlers == 0
    vm.start()
    reqs = make_requests(5)
    for r in reqs:
        device.guest_submit(r)
    check_all_once(reqs, collect(device, 5))


# ---------------------------------------------------------------------------------------
# one-off operations
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["pythonic", "qemu"])
def test_one_off_runs_while_holding_context(iothread: IOThread, api: str) -> None:
    ctx = iothread.ctx
    state: dict[str, Any] = {"fn_finished": False}
    ran = threading.Event()

    def bh(_: object) -> None:
        state["seen_fn_finished"] = state["fn_finished"]
        state["bh_thread"] = threading.get_ident()
        ran.set()

    def fn() -> str:
        assert ctx.held_by_me()
        assert ctx.statistics().lock.owner == threading.get_ident()
        ctx.bh_schedule_oneshot(bh)
        # Paused: the BH cannot run while fn runs.  (The flag is set last.)
        assert not ran.is_set()
        state["fn_finished"] = True
        return "snapshot"

    runner: Callable[..., Any] = one_off if api == "pythonic" else q.one_off
    assert runner(ctx, fn, timeout=WAIT) == "snapshot"
    assert not ctx.held_by_me()
    assert ran.wait(WAIT)
    assert state["seen_fn_finished"] is True
    assert state["bh_thread"] == iothread.thread_id


def test_one_off_releases_on_exception(iothread: IOThread) -> None:
    ctx = iothread.ctx

    def fn() -> None:
        raise KeyError("snapshot failed")

    with pytest.raises(KeyError, match="snapshot failed"):
        one_off(ctx, fn)
    assert not ctx.held_by_me()
    barrier(ctx)  # the IOThread runs again


def test_one_off_times_out_when_context_is_held(iothread: IOThread) -> None:
    ctx = iothread.ctx
    box: dict[str, Any] = {}

    def other() -> None:
        try:
            one_off(ctx, lambda: box.setdefault("ran", True), timeout=0.05)
        except TimeoutError as e:
            box["error"] = e

    with ctx.acquired(timeout=WAIT):
        t = threading.Thread(target=other)
        t.start()
        t.join(WAIT)
        assert not t.is_alive()
    assert "ran" not in box
    assert isinstance(box.get("error"), TimeoutError)
    assert ctx.name in str(box["error"])
    barrier(ctx)


# ---------------------------------------------------------------------------------------
# the VIRTUAL clock stops with the VM
# ---------------------------------------------------------------------------------------


def test_virtual_clock_frozen_while_stopped(
    platform: RealPlatform, iothread: IOThread, vm: VMState
) -> None:
    ctx = iothread.ctx
    clocks = clocks_for(platform)
    virtual_fired = threading.Event()
    realtime_fired = threading.Event()
    seen: dict[str, bool] = {}

    def on_realtime(_: object) -> None:
        seen["virtual_fired_before_realtime"] = virtual_fired.is_set()
        realtime_fired.set()

    vt = q.aio_timer_new(ctx, q.QEMU_CLOCK_VIRTUAL, q.SCALE_NS, lambda _: virtual_fired.set(), None)
    rt = q.aio_timer_new(ctx, q.QEMU_CLOCK_REALTIME, q.SCALE_NS, on_realtime, None)
    try:
        vm.stop()
        assert not clocks.virtual_running()
        frozen = q.qemu_clock_get_ns(q.QEMU_CLOCK_VIRTUAL, platform)
        t0 = time.monotonic_ns()
        # 1 ms of virtual time: would be due almost at once if the clock ran.
        q.timer_mod_ns(vt, frozen + 1_000_000)
        q.timer_mod_ns(rt, q.qemu_clock_get_ns(q.QEMU_CLOCK_REALTIME, platform) + 30_000_000)
        assert realtime_fired.wait(WAIT)
        assert time.monotonic_ns() - t0 >= 30_000_000
        assert seen["virtual_fired_before_realtime"] is False
        assert not virtual_fired.is_set()
        assert q.timer_pending(vt)
        assert q.qemu_clock_get_ns(q.QEMU_CLOCK_VIRTUAL, platform) == frozen
        assert clocks.get_ns(ClockType.VIRTUAL) == frozen
        before_start = time.monotonic_ns()
        vm.start()
        assert clocks.virtual_running()
        assert virtual_fired.wait(WAIT)
        now_virtual = q.qemu_clock_get_ns(q.QEMU_CLOCK_VIRTUAL, platform)
        after = time.monotonic_ns()
        # Virtual time resumed from where it was frozen: the stopped span does not count.
        assert frozen <= now_virtual <= frozen + (after - before_start)
    finally:
        with ctx.acquired(timeout=WAIT):
            q.timer_free(vt)
            q.timer_free(rt)
    assert iothread.errors == []
