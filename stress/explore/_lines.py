"""Replay lines: the one format every failure of the suite prints to be rerun.

A replay line is a shell command for the ``aioctx-verify`` console script::

    aioctx-verify replay [--mutant NAME] 'SPEC'

``--mutant`` names the catalogue mutant (:mod:`aioctx_verify.stress.mutation`) that was
applied when the failure was found; the replay applies it again.  ``SPEC`` says what to
rerun:

* a schedule string (``v1:<program>:<memory>:<tokens>``, see
  :mod:`aioctx_verify.stress.controlled`): a corpus program, a probe program of the kill
  matrix, or a multi-thread stateful scenario (its program name is the scenario,
  ``sm...``), rerun exactly;
* ``single:seed=<n>``: the single-thread lockstep search with that seed, rerun until its
  first failure (its generation is a function of the seed);
* ``real:<workload>:seed=<n>:trial=<i>:...``: one real-thread stress trial with the same
  seeded configuration (workload parameters, noise), rerun a bounded number of times, as
  real threads do not repeat an interleaving;
* ``probe-real:<probe>:monitored=<0|1>:switch=<seconds>``: a probe program on real threads
  (the kill matrix's ``stress_real``), rerun the same way.
"""

from __future__ import annotations

__all__ = ["REPLAY_PREFIX", "replay_line"]

#: The command every replay line starts with.
REPLAY_PREFIX = "aioctx-verify replay"


def replay_line(spec: str, mutant: str | None = None) -> str:
    """The replay line of one failure.

    Args:
        spec: a schedule string, a ``single:`` or a ``real:`` spec (see the module
            docstring).
        mutant: the name of the mutant applied when the failure was found; None (or
            ``none``, the unmutated impl) for none.

    Raises:
        ValueError: ``spec`` or ``mutant`` holds a quote or white space (specs never do).
    """
    for what, text in (("spec", spec), ("mutant", mutant or "")):
        if "'" in text or any(c.isspace() for c in text):
            raise ValueError(
                f"replay {what} {text!r} holds a quote or white space; "
                "pass the spec as the failing run printed it"
            )
    flag = f"--mutant {mutant} " if mutant and mutant != "none" else ""
    return f"{REPLAY_PREFIX} {flag}'{spec}'"
