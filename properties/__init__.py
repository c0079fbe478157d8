"""The three properties (and liveness), each defined once with its forms side by side.

* :mod:`aioctx_verify.properties._p1_nested_acquire` — P1 nested acquire correctness
* :mod:`aioctx_verify.properties._p2_bh_scheduling` — P2 lock-free BH scheduling
* :mod:`properties._p3_mutual_exclusion` — P3 mutual exclusion during event-loop iterations
* :mod:`aioctx_verify.properties._liveness` — no lost wake-up, no starvation, no deadlock
* :mod:`aioctx_verify.properties._progress` — liveness of every other part of the loop
  (timers, fd / notifier handlers, thread pool, dataplane kicks, IOThread stop,
  stop-the-world): the loop oracles, property ``LIVE`` too
* :mod:`aioctx_verify.properties._structure` — the representation invariants of a quiescent
  context (walk counters, BH reclamation, lock at rest, timer lists, pool counts): what a
  run leaves behind, each rule filed under P1, P2 or LIVE; the rules that hold whenever
  every thread is blocked (and a dataplane ring's kick) are also checked at every such
  point of a controlled run (:class:`StateMonitor`)

Each module states the property precisely in its docstring and holds its runtime monitor
(over impl's trace events), its model invariant (over :mod:`model` states) and a slot for
its z3 formula.  :func:`monitoring` attaches all monitors to a platform;
:func:`default_monitors` makes them (with a :class:`PlatformView`, a controlled platform's
clocks and fd readiness, the loop oracles also decide in virtual time).
"""

from . import _liveness as liveness
from . import _p1_nested_acquire as p1
from . import _p2_bh_scheduling as p2
from . import _p3_mutual_exclusion as p3
from . import _progress as progress
from ._liveness import LivenessMonitor
from ._monitor import (
    Monitor,
    MonitorSet,
    PropertyViolation,
    Violation,
    default_monitors,
    monitoring,
)
from ._p1_nested_acquire import NestedAcquireMonitor
from ._p2_bh_scheduling import BHSchedulingMonitor
from ._p3_mutual_exclusion import MutualExclusionMonitor
from ._progress import LOOP_BOUND, ORACLES, PlatformView, ProgressMonitor
from ._structure import (
    LOCK_RULES,
    POOL_RULES,
    QUIESCENT_RULES,
    STRUCTURE_PROPERTY,
    STRUCTURE_RULES,
    StateMonitor,
    pool_violations,
    quiescent_violations,
    structure_violations,
)

PROPERTIES = {"P1": p1, "P2": p2, "P3": p3, "LIVE": liveness}

__all__ = [
    "LOCK_RULES",
    "LOOP_BOUND",
    "ORACLES",
    "POOL_RULES",
    "PROPERTIES",
    "QUIESCENT_RULES",
    "STRUCTURE_PROPERTY",
    "STRUCTURE_RULES",
    "BHSchedulingMonitor",
    "LivenessMonitor",
    "Monitor",
    "MonitorSet",
    "MutualExclusionMonitor",
    "NestedAcquireMonitor",
    "PlatformView",
    "ProgressMonitor",
    "PropertyViolation",
    "StateMonitor",
    "Violation",
    "default_monitors",
    "liveness",
    "monitoring",
    "p1",
    "p2",
    "p3",
    "pool_violations",
    "progress",
    "quiescent_violations",
    "structure_violations",
]
