"""Generated mutants reviewed as *equivalent*: no execution the seam allows tells them apart
from impl, so no checker can ever kill them and they leave the score's denominator.

Each entry maps a mutant's *key* (``operator:file:function:variant: before -> after``,
:attr:`~aioctx_verify.stress.mutation._operators.GeneratedMutant.key`: stable wherever the
statement moves in its file, unlike the ``file:line:col`` name) to one line saying why it is
equivalent.
Add an entry only after reasoning it through against the platform contract
(:mod:`aioctx_verify.impl._platform`: C11 orderings, QEMU's barriers), not against what
our platforms happen to simulate: a relaxed load that only an ARM machine would expose is a
*survivor* (a gap of the checkers), not an equivalent mutant.  A key that no longer matches a
generated mutant (the reviewed statement or its function changed) fails the test suite and
is reported by ``aioctx-verify mutate``: re-review it against the new code.
"""

from __future__ import annotations

__all__ = ["EQUIVALENT"]

_HANDLER = (
    "two plain stores to a handler being set up, under the context lock: every reader is the "
    "lock holder, and debug_snapshot's racy read sees at most one of the two fields"
)
_POOL_LISTS = "both lists are only ever read and written with the pool mutex held"
_POOL_ORDER = (
    "ret is ordered before the completion BH's read by the pool mutex (worker writes ret, "
    "takes the mutex, sets DONE; the BH sees DONE under the mutex): the fence is redundant"
)
_NOTIFY_UNDER_LOCK = (
    "notify and the store are in one critical section and the waiter re-checks the field "
    "under the same mutex after its wait returns: no thread can see them in between"
)
_CANCEL = (
    "written under the pool mutex; state is read only under it, ret and cancelled only "
    "under it or after DONE was seen under it"
)


_LEFT_ZERO = (
    "left is an int of ns: the two tests differ only at left == 0, where wait(0) returns at "
    "once (False: the same branch; True: the loop recomputes left <= 0 and takes it), and "
    "the branch rechecks the ticket before it gives up"
)


_SHUTDOWN_LEFT_ZERO = (
    "left is an int of ns: the two tests differ only at left == 0, the deadline itself, "
    "where the mutant waits wait(0) once more before the same give-up (left < 0 next); a "
    "worker that exits in that instant is recorded as not timed out, as the original records "
    "one that exits a step before the deadline: the same outcomes, the deadline a closed "
    "rather than an open bound"
)


_IDLE_WMB = "ctx._p.fence(Fence.WMB) # idle (and the callback's inputs) before scheduled"
_IDLE_RELEASE = (
    "the exchange that publishes scheduled is a release RMW: it orders the idle store (and "
    "every earlier access) for whoever acquires it, before or after the fence alike"
)
_NESTED = "if self._owner_cell.load(_RELAXED) == me and self._nesting > 0:"
_ENTER = "if mine and lock._nesting > 0 and self._p.tracer is None:"
_OWNER_DEPTH = (
    "the two tests differ only at depth 0 with the owner cell naming the reader, a state "
    "only the owner's own unlock passes through (depth 0, then owner None, under _mutex), "
    "and the owner is the only thread whose id the cell can hold when it reads it"
)


_DP_COMPLETE = (
    "plain writes by the context's holder (the completion BH) before it puts the request on "
    "the used ring under _vq: inflight is read by stop() holding the context, ret and "
    "completed by whoever takes the request off the ring under _vq, or after the run"
)
_LATE_WITNESS = (
    "a witness of a missed wake-up: it runs only when an idle worker's wait ran out with a "
    "request queued half its idle timeout ago, and every submit notifies a waiting worker "
    "under the mutex, so impl never reaches it; the oracle reads it only to be zero"
)


def _key(op: str, file: str, function: str, variant: str, before: str, after: str) -> str:
    return f"{op}:impl/{file}:{function}:{variant}: {before} -> {after}"


_EVENTS = "node.events = (_READ_EVENTS if io_read else 0) | (_WRITE_EVENTS if io_write else 0)"
_WMB = "p.fence(Fence.WMB) # ret before state, paired with the BH's RMB"


def _swap(file: str, function: str, a: str, b: str) -> str:
    """The key of swap-adjacent's mutant that swaps statements ``a`` and ``b``."""
    return _key("swap-adjacent", file, function, "next", f"{a}; {b}", f"{b}; {a}")


EQUIVALENT: dict[str, str] = {
    # AioContext: fields of one handler, set up while the context is held.
    _swap("_context.py", "AioContext._add_handler", "node.io_read = io_read",
          "node.io_write = io_write"): _HANDLER,
    _swap("_context.py", "AioContext._add_handler", "node.io_write = io_write",
          "node.opaque = opaque"): _HANDLER,
    _swap("_context.py", "AioContext._add_handler", "node.opaque = opaque",
          "node.notifier = notifier"): _HANDLER,
    _swap("_context.py", "AioContext._add_handler", "node.notifier = notifier",
          "node.is_external = bool(is_external)"): _HANDLER,
    _swap("_context.py", "AioContext._add_handler", "node.is_external = bool(is_external)",
          _EVENTS): _HANDLER,
    _swap("_context.py", "AioContext._add_handler", _EVENTS, "self._poll_gen += 1"): (
        "node.events and _poll_gen are read only by the context's holder (_update_poll_set, "
        "dispatch), which wrote them: program order, not interleaving, decides"
    ),
    _swap("_context.py", "AioContext._remove_handler", "node.deleted = True",
          "node.revents = 0"): _HANDLER,
    _swap("_context.py", "AioContext._remove_handler", "node.revents = 0",
          "self._handlers_deleted = True"): (
        "revents and _handlers_deleted are read only by the context's holder, which wrote them"
    ),
    _swap("_context.py", "AioContext._update_poll_set", "self._polled = want",
          "self._poll_set_key = key"): (
        "_poll_set_key is read only by the holder that writes it; debug_snapshot reads _polled "
        "alone"
    ),
    _key("off-by-one", "_context.py", "AioContext._add_handler", "plus1",
         "self._poll_gen += 1", "self._poll_gen += 2"): (
        "_poll_gen is a generation compared for equality only; steps of 2 never repeat a value"
    ),
    _key("off-by-one", "_context.py", "AioContext._remove_handler", "plus1",
         "self._poll_gen += 1", "self._poll_gen += 2"): (
        "_poll_gen is a generation compared for equality only; steps of 2 never repeat a value"
    ),
    # IOThread start-up hand-shake.
    _swap("_iothread.py", "IOThread._run", "self.thread_id = me",
          "self._init_cond.notify_all()"): _NOTIFY_UNDER_LOCK,
    # Thread pool.
    _swap("_threadpool.py", "ThreadPool.submit", "self._live.append(req)",
          "self._queue.append(req)"): _POOL_LISTS,
    _swap("_threadpool.py", "ThreadPool._worker", "self._cur_threads -= 1",
          "self._cond.notify_all()"): _NOTIFY_UNDER_LOCK,
    _swap("_threadpool.py", "ThreadPool._worker", "req.ret = ret", _WMB): _POOL_ORDER,
    _key("fence-drop", "_threadpool.py", "ThreadPool._worker", "drop", _WMB, "pass"): (
        _POOL_ORDER
    ),
    _key("fence-drop", "_threadpool.py", "ThreadPool._completion_bh", "drop",
         "self._p.fence(Fence.RMB)", "pass"): _POOL_ORDER,
    _swap("_threadpool.py", "ThreadPool._completion_bh", "self._p.fence(Fence.RMB)",
          "self.completion_bh.schedule()"): _POOL_ORDER,
    _swap("_threadpool.py", "ThreadPool.cancel", "req.cancelled = True",
          "req.ret = -errno.ECANCELED"): _CANCEL,
    _swap("_threadpool.py", "ThreadPool.cancel", "req.ret = -errno.ECANCELED",
          "req.state = RequestState.DONE"): _CANCEL,
    # Timers.
    _key("off-by-one", "_timers.py", "Clocks._register", "plus1", "self._next_list += 1",
         "self._next_list += 2"): (
        "_next_list only makes unique keys of a dictionary; steps of 2 are unique too"
    ),
    _key("off-by-one", "_timers.py", "TimerList.mod", "plus1", "self._seq += 1",
         "self._seq += 2"): (
        "_seq only breaks ties of bisect_right on (expire, seq); any non-decreasing sequence "
        "inserts a timer after its equals, as 1-steps do"
    ),
    _key("off-by-one", "_timers.py", "TimerList.mod", "minus1", "self._seq += 1",
         "self._seq += 0"): (
        "with every _seq 0, bisect_right on (expire, 0) still inserts a timer after all its "
        "equals: the same position as increasing sequence numbers give"
    ),
    _swap("_timers.py", "TimerList.mod", "t._seq = self._seq", "t.expire_time = expire_ns"): (
        "_seq is read only under the list mutex that both stores hold; a racy expire_time "
        "reader sees the same sequence of values"
    ),
    # BH.schedule_idle publishes idle and the callback's inputs twice over: a release
    # fence (smp_wmb, QEMU's __atomic_thread_fence(__ATOMIC_RELEASE)) and a release RMW.
    _key("fence-drop", "_context.py", "BH.schedule_idle", "drop",
         "ctx._p.fence(Fence.WMB) # idle (and the callback's inputs) before scheduled", "pass"): (
        "the next statement is a release exchange of scheduled: a release RMW orders idle and "
        "every earlier access for whoever acquires it, so the release fence adds nothing"
    ),
    _key("order-relax", "_context.py", "BH.schedule_idle", "relaxed",
         "self.scheduled.exchange(True, _RELEASE)", "self.scheduled.exchange(True, _RELAXED)"): (
        "the release fence (smp_wmb) just before it makes the relaxed RMW synchronise with an "
        "acquire that reads it (or a later RMW of its release sequence) as a release RMW does"
    ),
    _key("rmw-split", "_context.py", "AioContext.aio_notify", "load-store",
         "self.notified.exchange(True, _SEQ)", "_split_exchange(self.notified, True, _SEQ)"): (
        "the exchange's result is unused and the value stored does not depend on it: every "
        "run of load-then-store is a run of the exchange placed at the store; the load's "
        "acquire would order only data an accept's caller wrote, which no waker reads"
    ),
    _key("notify-drop", "_context.py", "AioContext._remove_handler", "aio_notify",
         "self.aio_notify()", "pass"): (
        "a blocking aio_poll holds the context, so a remover (who holds it) reads notify_me 0; "
        "after the home thread's implicit release any poller acquires after the removal and "
        "polls the new set: the notify is at most a spurious wake-up"
    ),
    _key("notify-drop", "_dataplane.py", "DataplaneDevice.start", "set",
         "self.host_notifier.set() # requests queued while stopped", "pass"): (
        "the host notifier is level-triggered and cleared only by _handle_notify just before it "
        "takes the whole ring under _vq; every request is appended before its own kick, so a "
        "request left on the ring always leaves the notifier set"
    ),
    _swap("_lock.py", "RFifoLock.unlock", "self._nesting = 0",
          "self._owner_cell.store(None, _RELAXED)"): (
        "both stores are in one _mutex critical section; every unlocked reader reads the owner "
        "first and touches _nesting only as the owner, so no thread sees one without the other"
    ),
    _key("lock-move-out", "_timers.py", "TimerList.run_timers", "first",
         "with self._mutex:; active = self._active", "active = self._active; with self._mutex:"): (
        "only the load of _active moves out: the field is assigned once in __init__ before the "
        "list is published (and read unlocked by the pre-checks); every access to its items "
        "stays under _mutex"
    ),
    _key("off-by-one", "_timers.py", "TimerListGroup.deadline_ns", "boundary",
         "if d > 0 and (best < 0 or d < best):", "if d >= 0 and (best < 0 or d < best):"): (
        "d is a local int and d == 0 returned just above, so on the path that reaches this "
        "test d >= 0 and d > 0 are the same condition"
    ),
    _swap("_context.py", "AioContext._dispatch_handlers",
          "self._handlers = [n for n in self._handlers if not n.deleted]",
          "self._handlers_deleted = False"): (
        "both fields are read and written only by the context's holder (removals hold it "
        "too): the two stores are one critical section, whatever their order"
    ),
    _key("rmw-split", "_context.py", "AioContext._poll_locked", "load-store",
         "notify_me.fetch_add(-2, _RELEASE)", "_split_fetch_add(notify_me, -2, _RELEASE)"): (
        "notify_me is written only by the thread running the context's iteration, which "
        "holds the context (P3): writers never overlap, and the split store still releases"
    ),
    _key("rmw-split", "_context.py", "AioContext._poll_locked", "load-store",
         "notify_me.fetch_add(2, _RELAXED)", "_split_fetch_add(notify_me, 2, _RELAXED)"): (
        "notify_me is written only by the thread running the context's iteration, which "
        "holds the context (P3), so writers are ordered by the lock and never overlap; impl "
        "has no GSource prepare, QEMU's concurrent writer; wakers only read it"
    ),
    _key("notify-drop", "_context.py", "AioContext._add_handler", "aio_notify",
         "self.aio_notify()", "pass"): (
        "as for _remove_handler: the setter holds the context (or is its home thread, which "
        "takes it implicitly), so no aio_poll blocks meanwhile and notify_me reads 0; every "
        "later poller acquires after the change and builds its poll set anew"
    ),
    _key("order-relax", "_context.py", "AioContext._finalize", "relaxed",
         "self._handler_view.store((), _RELEASE)", "self._handler_view.store((), _RELAXED)"): (
        "the stored view is the empty tuple, which no write before the store initialised: a "
        "reader that loads it dereferences nothing a release would publish, and its other "
        "fields (closed, the lock) come with their own synchronisation"
    ),
    _swap("_context.py", "AioContext._finalize", "self._handlers = []",
          "self._handler_view.store((), _RELEASE)"): (
        "_handlers is read only by the context's holder, and _finalize runs after the last "
        "reference is gone (nobody holds or can take the context); the view's readers never "
        "read _handlers"
    ),
    _key("order-relax", "_context.py", "AioContext._poll_locked", "relaxed",
         "notify_me.fetch_add(-2, _RELEASE)", "notify_me.fetch_add(-2, _RELAXED)"): (
        "no thread acquires through notify_me: wakers load it relaxed behind their own full "
        "fence and only decide whether to kick, statistics() loads it relaxed; a release "
        "that nobody acquires orders nothing (the writer is the poller, after its poll)"
    ),
    _key("acqrel-drop", "_iothread.py", "IOThread._run", "pair",
         "ctx.acquire(); ctx.release()", "pass; pass"): (
        "the IOThread is its context's home thread, so aio_poll takes the context implicitly "
        "around the iteration and releases it after, where the loop's own pair would; only "
        "the iterations counter (its own, allow-listed) moves outside the lock"
    ),
    _swap("_dataplane.py", "DataplaneDevice.guest_submit", "self._avail.append(req)",
          "self._submitted += 1"): (
        "both in one _vq critical section, and the ring and the count are read only under _vq "
        "(the handler, queued()): no thread sees one change without the other"
    ),
    _swap("_dataplane.py", "DataplaneDevice._complete", "req.completions += 1",
          "req.completed_in.append(self._p.current_thread())"): (
        "two plain writes to the request by the thread completing it, before it puts the "
        "request on the used ring under _vq; every reader takes it off the ring (or reads "
        "after the run), so after both"
    ),
    _key("off-by-one", "_lock.py", "RFifoLock._wait_turn", "boundary",
         "if left <= 0 or not self._cond.wait(left / 1e9):",
         "if left < 0 or not self._cond.wait(left / 1e9):"): _LEFT_ZERO,
    _key("off-by-one", "_lock.py", "RFifoLock._wait_turn", "minus1",
         "if left <= 0 or not self._cond.wait(left / 1e9):",
         "if left <= -1 or not self._cond.wait(left / 1e9):"): _LEFT_ZERO,
    _swap("_context.py", "AioContext._finalize", "self._handler_view.store((), _RELEASE)",
          "self._polled = {}"): (
        "after _finalize nothing polls or dispatches: the two are read only by "
        "debug_snapshot, _polled plain (racy by design, allow-listed) and the view on its "
        "own, so no reader can rely on seeing the two changes in one order"
    ),
    _key("order-relax", "_context.py", "AioContext.aio_notify_accept", "relaxed",
         "if self.notified.exchange(False, _SEQ):",
         "if self.notified.exchange(False, _RELAXED):"): (
        "reading True, it is followed by the notifier's test_and_clear, a system call and so "
        "a full fence (impl._platform.RawNotifier): a relaxed read of aio_notify's seq_cst "
        "store then that fence synchronise as an acquire would; reading False it acquires "
        "nothing, and no waker reads the False it stores (aio_notify ignores the old value)"
    ),
    _swap("_lock.py", "RFifoLock.lock", "self._owner_cell.store(me, _RELAXED)",
          "self._nesting = 1"): (
        "both stores are the new owner's, under _mutex: the depth is read only by the owner "
        "(its own program order) and under the mutex, and outside it the owner cell is only "
        "compared with the reader's own id, which no other thread stores"
    ),
    _key("order-relax", "_context.py", "AioContext.ref", "relaxed-default",
         "self._refcnt.fetch_add(1)", "self._refcnt.fetch_add(1, _RELAXED)"): (
        "a reference is taken only by a thread that already holds one or was handed the "
        "context with happens-before, so the count cannot reach zero meanwhile; an increment "
        "orders nothing (std::shared_ptr's is relaxed), only the finalising decrement must"
    ),
    _key("order-relax", "_context.py", "AioContext.enable_external", "relaxed-default",
         "old = cnt.load()", "old = cnt.load(_RELAXED)"): (
        "the load only proposes the compare-exchange's expected value: the seq_cst exchange "
        "reads the newest count and synchronises as the load would (a stale guess fails it "
        "and loops), and coherence keeps the load from reading below the caller's own "
        "disable or any disable that happens-before the call, so the misuse check sees the same"
    ),
    # BH.schedule_idle: where the release fence sits does not matter either.
    _swap("_context.py", "BH.schedule_idle", "self.idle.store(True, _RELAXED)", _IDLE_WMB): (
        _IDLE_RELEASE
    ),
    _swap("_context.py", "BH.schedule_idle", _IDLE_WMB,
          "self.scheduled.exchange(True, _RELEASE)"): _IDLE_RELEASE,
    # The nested path of RFifoLock.lock: the same test as `with ctx:`'s fast path below.
    _key("off-by-one", "_lock.py", "RFifoLock.lock", "boundary", _NESTED,
         _NESTED.replace("_nesting > 0", "_nesting >= 0")): _OWNER_DEPTH,
    _key("off-by-one", "_lock.py", "RFifoLock.lock", "minus1", _NESTED,
         _NESTED.replace("_nesting > 0", "_nesting > -1")): _OWNER_DEPTH,
    # The nested fast path of `with ctx:` (taken only untraced).
    _key("off-by-one", "_context.py", "AioContext.__enter__", "boundary", _ENTER,
         _ENTER.replace("_nesting > 0", "_nesting >= 0")): _OWNER_DEPTH,
    _key("off-by-one", "_context.py", "AioContext.__enter__", "minus1", _ENTER,
         _ENTER.replace("_nesting > 0", "_nesting > -1")): _OWNER_DEPTH,
    _key("off-by-one", "_context.py", "AioContext.__enter__", "plus1", _ENTER,
         _ENTER.replace("_nesting > 0", "_nesting > 1")): (
        "at depth 1 the owner now takes the slow path, lock(), which nests the same way "
        "(owner == me: depth + 1, no wait, no trace since the fast path runs untraced only): "
        "the same state, by a longer path"
    ),
    _swap("_context.py", "AioContext._reclaim_bhs", "self._bhs = keep",
          "self._bh_deleted = pending"): (
        "both stores are in one _bh_lock critical section; every other reader of either takes "
        "_bh_lock (one-shot scheduling, statistics) or is the context's holder, which is the "
        "thread running this reclaim"
    ),
    _swap("_context.py", "AioContext._add_handler", "node.is_ctx_notifier = own",
          "self._handlers.append(node)"): _HANDLER,
    _key("order-relax", "_context.py", "AioContext.aio_notify", "relaxed",
         "self.notified.exchange(True, _SEQ)", "self.notified.exchange(True, _RELAXED)"): (
        "the notifier's set just before it is a system call and so a full fence "
        "(impl._platform.RawNotifier): fence then relaxed RMW synchronises with the accept's "
        "seq_cst exchange that reads it as the seq_cst RMW would, and only accept reads "
        "notified"
    ),
    _key("off-by-one", "_context.py", "AioContext.set_fd_handler", "minus1",
         "if fd < 0 or not self._p.fd_is_open(fd):",
         "if fd < -1 or not self._p.fd_is_open(fd):"): (
        "the tests differ only at fd == -1, which no platform reports open (Platform."
        "fd_is_open: no descriptor -1), so the same single raise is taken"
    ),
    _key("lock-move-out", "_timers.py", "TimerList.run_timers", "last",
         "[16] cb, opaque = t.cb, t.opaque", "[12] cb, opaque = t.cb, t.opaque"): (
        "a timer's cb and opaque are written once, in QEMUTimer.__init__, before the timer "
        "can be on any list; read inside or outside the mutex they are the same values"
    ),
    _key("lock-move-out", "_lock.py", "RFifoLock.lock", "last",
         'if self._platform.tracer is not None:; self._trace("acquire", me, 1); finally:; '
         'mutex.release()',
         'finally:; mutex.release(); if self._platform.tracer is not None:; '
         'self._trace("acquire", me, 1)'): (
        "only the trace call moves: the grant (owner, depth) and every wake-up stay under "
        "the mutex, so the lock behaves the same; the trace feeds the monitors, it is not "
        "the lock's behaviour"
    ),
    _key("lock-move-out", "_lock.py", "RFifoLock.unlock", "first",
         "mutex.acquire() # by hand, as in lock(); try:; self._nesting = 0",
         "self._nesting = 0; mutex.acquire() # by hand, as in lock(); try:"): (
        "the owner zeroes its own depth just before taking the mutex instead of just after: "
        "it still owns the lock then (the owner cell is cleared under the mutex, and only "
        "then can a waiter be granted and write the depth), and any other thread reads the "
        "depth only as owner or under the mutex, after this release"
    ),
    _swap("_iothread.py", "IOThread.join", "self._running = False", "self._joined = True"): (
        "two plain stores by the joining thread with nothing between them: a reader ordered "
        "after the join (happens-before) sees both, and one that is not is a data race on "
        "either field with or without the swap"
    ),
    _key("off-by-one", "_context.py", "AioContext._poll_locked", "minus1",
         "if tr is not None and timeout != 0:", "if tr is not None and timeout != -1:"): (
        "only which iterations emit the poll_wait trace event changes (it is emitted only "
        "with a tracer attached): the poll, its timeout and every state change are the same; "
        "the trace feeds the monitors, it is not the loop's behaviour"
    ),
    _swap("_threadpool.py", "ThreadPool.shutdown", "self._stopping = True",
          "self._queue.clear()"): (
        "both in one pool-mutex critical section, and _stopping and the queue are read only "
        "under the mutex: no thread sees one change without the other"
    ),
    # The pool's late-start witness: its body runs only after a missed wake-up.
    _key("off-by-one", "_threadpool.py", "ThreadPool._note_idle_end", "boundary",
         "if 2 * waited >= int(self.idle_timeout * 1e9):",
         "if 2 * waited > int(self.idle_timeout * 1e9):"): _LATE_WITNESS,
    _key("off-by-one", "_threadpool.py", "ThreadPool._note_idle_end", "plus1",
         "self.late_starts += 1", "self.late_starts += 2"): _LATE_WITNESS,
    _key("off-by-one", "_threadpool.py", "ThreadPool._note_idle_end", "minus1",
         "self.late_starts += 1", "self.late_starts += 0"): _LATE_WITNESS,
    _swap("_timers.py", "Clocks.start_virtual",
          "self._virtual_offset = frozen - self._p.monotonic_ns()",
          "self._virtual_frozen = None"): (
        "both in one clocks-mutex critical section, and every reader of the offset and the "
        "frozen value (get_ns, stop_virtual, advance_virtual, virtual_running) takes it"
    ),
    _swap("_timers.py", "QEMUTimer.free", "self.timer_list.remove(self)",
          "self.freed = True"): (
        "the freeing thread's two steps: freed is a plain flag read only by the timer's own "
        "API calls, which a program may not make concurrently with timer_free (that is a "
        "data race on the flag either way); the list removal takes the list mutex alike"
    ),
    _swap("_timers.py", "TimerList.remove", "self._active.remove(t)",
          "t.expire_time = -1"): (
        "both in one list-mutex critical section; expire_time is read only under the mutex, "
        "and the unlocked emptiness pre-checks of _active do not read expire_time"
    ),
    _key("lock-move-out", "_timers.py", "TimerList.deadline_ns", "first",
         "with self._mutex:; active = self._active", "active = self._active; with self._mutex:"): (
        "only the load of _active moves out: the field is assigned once in __init__ before the "
        "list is published; every access to its items stays under _mutex"
    ),
    _key("off-by-one", "_timers.py", "TimerListGroup.deadline_ns", "plus1",
         "if d > 0 and (best < 0 or d < best):",
         "if d > 0 and (best < 1 or d < best):"): (
        "best is -1 or a d > 0 it took, an int: best < 1 and best < 0 are the same test"
    ),
    _key("off-by-one", "_timers.py", "TimerListGroup.deadline_ns", "boundary",
         "if d > 0 and (best < 0 or d < best):",
         "if d > 0 and (best < 0 or d <= best):"): (
        "at d == best the assignment stores the value best already holds"
    ),
    _swap("_dataplane.py", "DataplaneDevice.start",
          "self.host_notifier.set() # requests queued while stopped", "self.started = True"): (
        "started is read only by start and stop, which a device's one control thread calls "
        "(the transition flag turns away the other); the handler and the guest never read it"
    ),
    _swap("_dataplane.py", "DataplaneDevice._complete", "self.inflight -= 1",
          "self.completed += 1"): _DP_COMPLETE,
    _swap("_dataplane.py", "DataplaneDevice._complete", "self.completed += 1",
          "req.ret = ret"): _DP_COMPLETE,
    _key("lock-move-out", "_iothread.py", "IOThread.start", "last",
         "[12] if self.thread_id is None:; [16] raise IOThreadStateError(f\"IOThread "
         "{self.name} did not start within {timeout} s\")",
         "[8] if self.thread_id is None:; [12] raise IOThreadStateError(f\"IOThread "
         "{self.name} did not start within {timeout} s\")"): (
        "thread_id is written once, by the new thread under the init mutex before it "
        "notifies; after a wait that saw it the re-check reads the same value in or out of "
        "the mutex, and only when the wait ran out can the thread write it in between: then "
        "the mutant returns the thread that did start, as the original does for one that "
        "starts a step before the deadline (a closed rather than an open bound)"
    ),
    _key("off-by-one", "_threadpool.py", "ThreadPool.shutdown", "boundary",
         "if left <= 0:", "if left < 0:"): _SHUTDOWN_LEFT_ZERO,
    _key("off-by-one", "_threadpool.py", "ThreadPool.shutdown", "minus1",
         "if left <= 0:", "if left <= -1:"): _SHUTDOWN_LEFT_ZERO,
}
