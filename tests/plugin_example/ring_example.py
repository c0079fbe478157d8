import pytest

from aioctx_verify.impl import Fence, Ordering

RELAXED = Ordering.RELAXED


class Ring:
    """Requests from a vCPU thread to an IOThread: the producer publishes ``head`` and
    schedules the consumer BH unless it is already on its way (``notified``)."""

    def __init__(self, platform, ctx, size=4, barrier=True):
        self.p = platform
        self.slots = [platform.atomic(0, f"slot{i}") for i in range(size)]
        self.head = platform.atomic(0, "head")
        self.notified = platform.atomic(False, "notified")
        self.tail = 0  # the consumer's own
        self.got = []
        self.barrier = barrier
        with ctx:
            self.bh = ctx.bh_new(self._consume)

    def push(self, value):  # vCPU thread
        h = self.head.load(RELAXED)
        self.slots[h].store(value, RELAXED)
        self.p.fence(Fence.WMB)  # the slot before the head
        self.head.store(h + 1, RELAXED)
        self.p.fence(Fence.MB)  # the head before reading notified
        if not self.notified.load(RELAXED):
            self.notified.store(True, RELAXED)
            self.bh.schedule()

    def _consume(self, _opaque):  # IOThread, in a BH
        self.notified.store(False, RELAXED)
        if self.barrier:
            self.p.fence(Fence.MB)  # notified cleared before reading head
        while self.tail < self.head.load(RELAXED):
            self.p.fence(Fence.RMB)
            self.got.append(self.slots[self.tail].load(RELAXED))
            self.tail += 1


@pytest.mark.explore(strategy="pct", runs=300, memory="tso")
@pytest.mark.parametrize("barrier", [True, False])
def test_every_request_is_consumed(aioctx, barrier):
    it = aioctx.iothread("io")
    ring = Ring(aioctx.platform, it.ctx, barrier=barrier)
    vcpu = aioctx.spawn(lambda: [ring.push(v) for v in (1, 2)], "vcpu")
    vcpu.join()
    it.join()  # stop the IOThread: whatever was scheduled has run
    assert ring.got == [1, 2]
