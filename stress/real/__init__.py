"""Real-thread stress: workloads graded ACCEPTABLE / ACCEPTABLE_INTERESTING / FORBIDDEN,
noise injection, the stall watch and the trial runner.
"""

from ._runner import (
    NoiseConfig,
    NoisyPlatform,
    TrialFailure,
    WorkloadResult,
    format_result,
    kill_checker,
    run_workload,
)
from ._workloads import (
    WORKLOADS,
    Grade,
    Outcome,
    Params,
    Stall,
    StallWatch,
    Trial,
    Workload,
    dump_stacks,
)

__all__ = [
    "Grade",
    "NoiseConfig",
    "NoisyPlatform",
    "Outcome",
    "Params",
    "Stall",
    "StallWatch",
    "Trial",
    "TrialFailure",
    "WORKLOADS",
    "Workload",
    "WorkloadResult",
    "dump_stacks",
    "format_result",
    "kill_checker",
    "run_workload",
]
