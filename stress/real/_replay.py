"""Replay of one real-thread stress trial from its ``real:`` spec (see
:mod:`aioctx_verify.stress.explore._lines` for the replay line).

A spec records everything that fixes a trial's random choices: the workload, its parameters,
the run's seed, the trial's index (its plan and its noise stream are seeded by the three),
the noise configuration and the runner's time bounds::

    real:<workload>:seed=<n>:trial=<i>:threads=<t>:iothreads=<n>:rounds=<r>:seconds=<s>:
        noise=<off|p/max_sleep/yield_share/low..high|p/max_sleep/yield_share/none>:
        patience=<s>:timeout=<s>

(one line, no spaces).  Real threads are not deterministic: the OS and the GIL pick the
interleaving.  :func:`replay_trial` therefore reruns that same seeded trial configuration
up to ``attempts`` times, bounded in wall time, and reports the first failing attempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aioctx_verify.impl import UsageError

from ..mutation import Via
from ._runner import (
    _VIA,
    NoiseConfig,
    TrialFailure,
    WorkloadResult,
    _failure,
    _resolve,
    _run_trial,
)
from ._workloads import Params

__all__ = ["RealSpec", "TrialReplay", "replay_trial", "result_replay_line", "trial_spec"]

_PREFIX = "real"


@dataclass(frozen=True, slots=True)
class RealSpec:
    """A parsed ``real:`` spec: one trial's seeded configuration."""

    workload: str
    seed: int
    trial: int
    params: Params
    noise: NoiseConfig | None
    patience: float
    timeout: float

    def __str__(self) -> str:
        p = self.params
        return (
            f"{_PREFIX}:{self.workload}:seed={self.seed}:trial={self.trial}:"
            f"threads={p.threads}:iothreads={p.iothreads}:rounds={p.rounds}:"
            f"seconds={p.seconds!r}:noise={_noise_text(self.noise)}:"
            f"patience={self.patience!r}:timeout={self.timeout!r}"
        )

    @classmethod
    def parse(cls, text: str) -> RealSpec:
        """Parse a spec as :func:`trial_spec` prints it.

        Raises:
            UsageError: a malformed spec or an unknown workload.
        """
        parts = text.strip().split(":")
        if len(parts) < 2 or parts[0] != _PREFIX:
            raise UsageError(
                f"malformed real-thread spec {text[:60]!r}: expected "
                "real:<workload>:seed=<n>:trial=<i>:..., as printed by a failing stress run"
            )
        fields: dict[str, str] = {}
        for part in parts[2:]:
            key, eq, value = part.partition("=")
            if not eq:
                raise UsageError(f"bad field {part!r} in real-thread spec: expected key=value")
            fields[key] = value
        need = ("seed", "trial", "threads", "iothreads", "rounds", "seconds", "noise",
                "patience", "timeout")
        missing = [k for k in need if k not in fields]
        if missing:
            raise UsageError(
                f"real-thread spec {text[:60]!r} lacks {', '.join(missing)}; "
                "pass the whole spec the failing run printed"
            )
        try:
            wl = _resolve(parts[1])
            params = Params(
                threads=int(fields["threads"]),
                iothreads=int(fields["iothreads"]),
                rounds=int(fields["rounds"]),
                seconds=float(fields["seconds"]),
            )
            return cls(
                wl.name,
                int(fields["seed"]),
                int(fields["trial"]),
                params,
                _parse_noise(fields["noise"]),
                float(fields["patience"]),
                float(fields["timeout"]),
            )
        except ValueError as e:
            raise UsageError(f"bad number in real-thread spec {text[:60]!r}: {e}") from None


def _noise_text(noise: NoiseConfig | None) -> str:
    if noise is None:
        return "off"
    si = noise.switch_interval
    interval = "none" if si is None else f"{si[0]!r}..{si[1]!r}"
    return f"{noise.probability!r}/{noise.max_sleep!r}/{noise.yield_share!r}/{interval}"


def _parse_noise(text: str) -> NoiseConfig | None:
    if text == "off":
        return None
    parts = text.split("/")
    if len(parts) != 4:
        raise ValueError(f"noise {text!r} is not off or p/max_sleep/yield_share/low..high")
    si: tuple[float, float] | None = None
    if parts[3] != "none":
        low, _, high = parts[3].partition("..")
        si = (float(low), float(high))
    return NoiseConfig(float(parts[0]), float(parts[1]), float(parts[2]), si)


def trial_spec(
    workload: str,
    params: Params,
    *,
    seed: int,
    trial: int,
    noise: NoiseConfig | None,
    patience: float = 2.0,
    timeout: float = 10.0,
) -> str:
    """The ``real:`` spec of one trial of :func:`~aioctx_verify.stress.real.run_workload`."""
    return str(RealSpec(workload, seed, trial, params, noise, patience, timeout))


@dataclass(frozen=True, slots=True)
class TrialReplay:
    """What rerunning a trial's configuration gave.

    Attributes:
        spec: the trial rerun.
        failure: the first failing attempt's failure, or None when no attempt failed.
        attempts: attempts run.
        outcomes: each attempt's outcome string, in order.
    """

    spec: RealSpec
    failure: TrialFailure | None
    attempts: int
    outcomes: tuple[str, ...]

    @property
    def via(self) -> Via | None:
        """What noticed the failure, in the kill matrix's words (None without one)."""
        return None if self.failure is None else _VIA[self.failure.kind]


def replay_trial(
    spec: str | RealSpec, *, attempts: int = 20, seconds: float = 60.0
) -> TrialReplay:
    """Rerun one trial's seeded configuration until it fails, ``attempts`` ran or
    ``seconds`` passed (each attempt is bounded by the spec's ``timeout``).

    Raises:
        UsageError: a malformed spec or an unknown workload.
    """
    s = spec if isinstance(spec, RealSpec) else RealSpec.parse(spec)
    wl = _resolve(s.workload)
    start = time.monotonic()
    outcomes: list[str] = []
    for _ in range(max(1, attempts)):
        rec = _run_trial(
            wl,
            s.params,
            seed=s.seed,
            index=s.trial,
            noise=s.noise,
            monitors=True,
            deadline=time.monotonic() + s.timeout,
            patience=s.patience,
            grace=min(s.patience * 2, s.timeout),
            stall_bound=s.patience / 2,
        )
        outcomes.append(rec.outcome)
        failure = _failure(wl, s.trial, rec)
        if failure is not None:
            return TrialReplay(s, failure, len(outcomes), tuple(outcomes))
        if time.monotonic() - start >= seconds:
            break
    return TrialReplay(s, None, len(outcomes), tuple(outcomes))


def result_replay_line(
    r: WorkloadResult, failure: TrialFailure | None = None, mutant: str | None = None
) -> str:
    """The replay line of a run's first failing trial (``failure``, default
    ``r.failure``; trial 0 when the run failed without one), under ``mutant``."""
    from aioctx_verify.stress.explore import replay_line

    f = failure if failure is not None else r.failure
    spec = trial_spec(
        r.name,
        r.params,
        seed=r.seed,
        trial=f.trial if f is not None else 0,
        noise=r.noise,
        patience=r.patience,
        timeout=r.trial_timeout,
    )
    return replay_line(spec, mutant)
