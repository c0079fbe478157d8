"""The controlled platform: the same :mod:`aioctx_verify.impl` code with every interleaving
decision owned by a deterministic scheduler (virtual time, optional TSO/PSO store buffers),
its schedule strings, and the strategies that choose at each decision.
"""

from ._platform import (
    Abort,
    Choice,
    ControlledPlatform,
    Decision,
    RunOutcome,
    Step,
    Strategy,
)
from ._schedule import (
    InvalidScheduleError,
    Schedule,
    decode_tokens,
    encode_tokens,
)
from ._strategies import (
    DataStrategy,
    DFSStrategy,
    PCTStrategy,
    PrefixStrategy,
    RandomStrategy,
    ReplayStrategy,
)

__all__ = [
    "Abort",
    "Choice",
    "ControlledPlatform",
    "DFSStrategy",
    "DataStrategy",
    "Decision",
    "InvalidScheduleError",
    "PCTStrategy",
    "PrefixStrategy",
    "RandomStrategy",
    "ReplayStrategy",
    "RunOutcome",
    "Schedule",
    "Step",
    "Strategy",
    "decode_tokens",
    "encode_tokens",
]
