"""The controlled platform: the same :mod:`aioctx_verify.impl` code with every interleaving
decision owned by a deterministic scheduler (virtual time, optional TSO/PSO store buffers),
its schedule strings, the strategies that choose at each decision, and the happens-before
race detector for plain fields (the seam's rule: a shared word accessed without a lock is an
atomic cell).
"""

from ._dpor import DPORStrategy
from ._platform import (
    Abort,
    Choice,
    ControlledPlatform,
    Decision,
    Event,
    RunOutcome,
    Step,
    Strategy,
    TraceLog,
    run_batch,
)
from ._portfolio import PortfolioStrategy
from ._race import (
    BENIGN,
    Access,
    Benign,
    Race,
    RaceDetector,
)
from ._race_hooks import impl_classes
from ._race_search import (
    FieldAccess,
    RaceProgram,
    RaceResult,
    field_accesses,
    find_races,
    replay_races,
)
from ._schedule import (
    InvalidScheduleError,
    Schedule,
    decode_tokens,
    encode_tokens,
)
from ._strategies import (
    DEFAULT_STRATEGIES,
    STRATEGY_NAMES,
    Conflicts,
    ConflictStrategy,
    DataStrategy,
    DFSStrategy,
    PCTStrategy,
    PostponeStrategy,
    PrefixStrategy,
    RandomStrategy,
    ReplayStrategy,
    for_memory,
    make_strategy,
)

__all__ = [
    "for_memory",
    "make_strategy",
    "DEFAULT_STRATEGIES",
    "STRATEGY_NAMES",
    "PortfolioStrategy",
    "BENIGN",
    "Abort",
    "Access",
    "Benign",
    "Choice",
    "ControlledPlatform",
    "ConflictStrategy",
    "Conflicts",
    "FieldAccess",
    "DFSStrategy",
    "DPORStrategy",
    "DataStrategy",
    "Decision",
    "Event",
    "InvalidScheduleError",
    "PCTStrategy",
    "PostponeStrategy",
    "PrefixStrategy",
    "Race",
    "RaceDetector",
    "RaceProgram",
    "RaceResult",
    "RandomStrategy",
    "ReplayStrategy",
    "RunOutcome",
    "Schedule",
    "Step",
    "Strategy",
    "TraceLog",
    "decode_tokens",
    "encode_tokens",
    "field_accesses",
    "find_races",
    "impl_classes",
    "replay_races",
    "run_batch",
]
