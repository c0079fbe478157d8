"""The model: a pure, immutable state machine of QEMU's AioContext protocol, and its search.

Why it exists: it is the oracle.  Small and exhaustively searchable, it checks the protocol
itself (and the historical QEMU bugs re-created as ``ModelConfig.bugs`` flags), it checks the
runtime monitors of :mod:`properties` (:func:`events_of` turns a model path into impl's trace
events), and its single-thread view (:class:`SequentialContext`) is the reference the
Hypothesis stateful tests run impl against.

::

    from . import ModelConfig, search, check_bug

    print(search(ModelConfig(threads=2, bhs=2, max_depth=2)).summary())
    r = check_bug("nonsticky-kick")      # r.violation == "LIVE", r.path: shortest path

Pieces: :mod:`model._state` (config and state values), :mod:`model._actions` (the
transition relation, one atomic step per action), :mod:`model.invariants` (P1/P2/P3 over
states, liveness over paths), :mod:`model._search` (breadth-first search, :func:`check_bug`),
:mod:`aioctx_verify.model._sequential` (the single-thread reference).
"""

from . import invariants
from ._actions import Action, enabled_actions, events_of, format_path, replay, step, successors
from ._search import BUG_CONFIGS, BUG_PROPERTY, SearchResult, bug_config, check_bug, search
from ._sequential import SequentialContext, SequentialUsageError, WouldBlockForever
from ._state import (
    BH_CALLBACKS,
    CLIENT_OPS,
    MODEL_BUGS,
    BHState,
    LockState,
    ModelConfig,
    ModelError,
    State,
    ThreadState,
    initial,
)
from ._symbolic import Encoding, Selector, SymBH, SymLock, SymState, SymThread, sym_label
from ._z3_invariants import Invariant
from ._z3_prove import (
    ProofReport,
    PropertyProof,
    Strengthening,
    bmc,
    houdini,
    k_induction,
    prove,
    shortest_violation,
)

__all__ = [
    "BH_CALLBACKS",
    "BUG_CONFIGS",
    "BUG_PROPERTY",
    "CLIENT_OPS",
    "MODEL_BUGS",
    "Action",
    "BHState",
    "LockState",
    "ModelConfig",
    "ModelError",
    "SearchResult",
    "SequentialContext",
    "SequentialUsageError",
    "State",
    "ThreadState",
    "WouldBlockForever",
    "bug_config",
    "check_bug",
    "enabled_actions",
    "events_of",
    "format_path",
    "initial",
    "invariants",
    "replay",
    "search",
    "step",
    "successors",
]
# The symbolic model and its proofs (z3): model/_symbolic.py, _z3_invariants.py, _z3_prove.py.
__all__ += [
    "Encoding",
    "Invariant",
    "ProofReport",
    "PropertyProof",
    "Selector",
    "Strengthening",
    "SymBH",
    "SymLock",
    "SymState",
    "SymThread",
    "bmc",
    "houdini",
    "k_induction",
    "prove",
    "shortest_violation",
    "sym_label",
]
