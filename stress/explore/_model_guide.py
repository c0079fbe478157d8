"""The guided strategy: steers a controlled run of impl along a model path, matching the
trace events impl emits against those of the path's actions.

Why it exists: the steering is a scheduler strategy of its own, independent of the program
it steers (:mod:`~aioctx_verify.stress.explore._model_program` only feeds it impl's
events), and it is where the matching's approximations live.
"""

from __future__ import annotations

from collections.abc import Sequence

from aioctx_verify.impl import TraceEvent
from aioctx_verify.model import Action

from ..controlled import Decision
from ._model_program import FromModelError

#: Event kinds the model emits: impl's other kinds (``poll_woke``, ``iothread_start``)
#: have no model step and are skipped when matching.
_MODEL_KINDS = frozenset({
    "acquire", "release", "lock_wait", "contention_kick", "poll_begin", "poll_wait",
    "poll_end", "notify", "notify_accept", "bh_schedule_begin", "bh_schedule_end",
    "bh_run_begin", "bh_run_end", "bh_cancel", "bh_delete", "bh_new",
})
#: Kinds whose object is compared as is (depths, blocking); BH kinds are compared after
#: mapping the model's BH id to impl's; other objects (tickets, timeouts) are not compared.
_EXACT_OBJ = frozenset({"acquire", "release", "poll_begin"})
_BH_KINDS = frozenset({
    "bh_schedule_begin", "bh_schedule_end", "bh_run_begin", "bh_run_end", "bh_cancel",
    "bh_delete",
})



# ------------------------------------------------------------------------------------------
# The guided strategy
# ------------------------------------------------------------------------------------------
Event = tuple[str, int, str]


class GuidedStrategy:
    """Steers a controlled run along a model path, by trace events.

    Before :meth:`begin` (the program's set-up) the main thread is preferred.  Then, for
    the next expected action, its thread is chosen whenever it can run, until impl emitted
    that action's events in order (an action without events lasts until its thread blocks
    or emits an event).  When the path's thread cannot run, the non-preempting option is
    taken (the guidance waits); when impl's events differ from the path's (another thread's
    model event, or the wrong one), guidance stops and the run goes on without
    preemption.  :attr:`matched` counts the actions completed; :attr:`divergence` says
    where and how the run left the path.
    """

    name = "guided"

    def __init__(self, path: Sequence[Action]) -> None:

        acts = [a for a in path if isinstance(a, Action)]
        if len(acts) != len(path):
            raise FromModelError("a model path is a sequence of model.Action; got something else")
        self.path = tuple(acts)
        self._expect: tuple[tuple[int, tuple[Event, ...]], ...] = tuple(
            (a.thread, tuple(e for e in a.events if e[0] in _MODEL_KINDS)) for a in acts
        )
        self.matched = 0
        self.divergence = ""
        self._ev = 0
        self._active = False
        self._threads: dict[int, int] = {}
        self._ids: dict[int, int] = {}

    @property
    def complete(self) -> bool:
        """Every action of the path was matched."""
        return self.matched == len(self._expect)

    def next_run(self) -> bool:
        self.matched = 0
        self.divergence = ""
        self._ev = 0
        self._active = False
        return True

    def begin(self, threads: dict[int, int], bh_ids: dict[int, int]) -> None:
        """Set-up done: model thread -> platform thread, model BH id -> impl BH id."""
        self._threads = threads
        self._ids = bh_ids
        self._active = True

    def _guiding(self) -> bool:
        return self._active and not self.divergence and self.matched < len(self._expect)

    def _diverge(self, text: str) -> None:
        self.divergence = f"model step {self.matched}: {text}"

    def _advance(self) -> None:
        self.matched += 1
        self._ev = 0

    def saw(self, ev: TraceEvent) -> None:
        """impl emitted ``ev`` (called from the program's tracer, no scheduling point)."""
        if not self._guiding() or ev.kind not in _MODEL_KINDS:
            return
        while self._guiding():
            t, evs = self._expect[self.matched]
            want = self._threads.get(t)
            if want is None:
                self._diverge(f"model thread t{t} has no impl thread")
                return
            if int(ev.thread) != want and not evs:
                # An eventless step ended: another thread moved without the scheduler
                # consulting us (the step's thread blocked, leaving one option).
                self._advance()
                continue
            if int(ev.thread) != want:
                self._diverge(
                    f"expected t{t} {self._describe()}, impl thread {int(ev.thread)} "
                    f"emitted {ev.kind}:{ev.obj}"
                )
                return
            if not evs:  # an eventless step ends at its thread's next event
                self._advance()
                continue
            kind, obj, detail = evs[self._ev]
            if not self._same(ev, kind, obj, detail):
                self._diverge(
                    f"expected t{t} {kind}:{obj}, impl emitted {ev.kind}:{ev.obj} {ev.detail}"
                )
                return
            self._ev += 1
            if self._ev == len(evs):
                self._advance()
            return

    def _describe(self) -> str:
        """The expected step and, when it has events, the next one's kind."""
        evs = self._expect[self.matched][1]
        step = self.path[self.matched].step
        return f"{step} {evs[self._ev][0]}" if evs else step

    def _same(self, ev: TraceEvent, kind: str, obj: int, detail: str) -> bool:
        if ev.kind != kind:
            return False
        if kind in _EXACT_OBJ:
            return int(ev.obj) == obj
        if kind in _BH_KINDS:
            if self._ids.get(obj, -1) != ev.obj:
                return False
            return kind != "bh_schedule_end" or ev.detail == detail
        return True

    def choose(self, d: Decision) -> int:
        runnable = {o.thread: i for i, o in enumerate(d.options) if o.kind == "run"}
        if not self._active:
            return runnable.get(0, d.default)  # set-up: the main thread
        while self._guiding():
            t, evs = self._expect[self.matched]
            want = self._threads.get(t, -1)
            if want in runnable:
                return runnable[want]
            if evs:
                return d.default  # the path's thread waits for another: no preemption
            self._advance()  # an eventless step ends when its thread blocks
        return d.default


def guided_strategy(path: Sequence[Action]) -> GuidedStrategy:
    """A strategy that steers impl's threads through ``path``'s steps (see
    :class:`GuidedStrategy`); pass the same object to :func:`program_for` as ``guide``."""
    return GuidedStrategy(path)

