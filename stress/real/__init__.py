"""Real-thread stress: workloads graded ACCEPTABLE / ACCEPTABLE_INTERESTING / FORBIDDEN,
noise injection, the stall watch and the trial runner.
"""

from ._replay import RealSpec, TrialReplay, replay_trial, result_replay_line, trial_spec
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
    "RealSpec",
    "TrialReplay",
    "format_result",
    "replay_trial",
    "result_replay_line",
    "trial_spec",
    "kill_checker",
    "run_workload",
]
