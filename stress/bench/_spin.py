"""Time to verdict for QEMU's aio_notify models: ours (:mod:`model._notify`) next to Spin's on
the same Promela model, measured end to end in the same run.

Why it exists: QEMU verifies its wake-up protocol with Spin (``docs/spin/*.promela``).  Our
encoding adds weak memory; this benchmark shows what that costs against the tool the QEMU
developers use, verdict for verdict.  For each (protocol, property) of
:data:`~model._notify.SPIN_MODELS`, Spin runs ``spin -a [-D...] model.pml``, ``gcc -O2 pan.c``
and ``./pan -a [-f]`` in a fresh directory (generate, compile, run, all timed), and its trail
is counted in steps (lines of the ``.trail`` file, the cycle marker excluded).  Ours is
:func:`~model._notify.check_protocol` under each memory model (explicit search for the
complete verdict, z3 for the shortest counterexample).  Spin is sequentially consistent, so
its figures sit next to our ``sc`` row; the ``tso``/``pso`` rows compare our weak-memory
verdict against the same Spin run.

The Promela files are QEMU's (GPL repository, public-domain files) and are never shipped:
pass the directory holding ``aio_notify.promela``, ``aio_notify_bug.promela`` and
``aio_notify_accept.promela`` as the argument, or in ``AIOCTX_SPIN_PROMELA_DIR``.  Without
them, or without ``spin``/``gcc`` (Debian: ``apt-get install spin gcc``), Spin's columns
say ``external``/``unavailable`` and the expected verdicts are printed from
:data:`SPIN_EXTERNAL` (measured with spin 6.5.2 and gcc -O2 on a loaded 2-core machine).
"""

from __future__ import annotations

import builtins
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ...model import _notify as notify

__all__ = ["SPIN_EXTERNAL", "SpinResult", "SpinRow", "main", "run_spin", "run_spin_benchmark"]

#: (protocol, property) -> (verdict, seconds end to end, trail steps) measured externally.
SPIN_EXTERNAL: dict[tuple[str, str], tuple[str, float, int | None]] = {
    ("aio_notify", "requests_served"): ("holds", 1.16, None),
    ("aio_notify/BUG", "requests_served"): ("refuted", 1.05, 24),
    ("aio_notify_bug", "event_toggles"): ("holds", 1.08, None),
    ("aio_notify_bug", "req_cleared"): ("holds", 1.11, None),
    ("aio_notify_bug/BUG", "event_toggles"): ("holds", 1.11, None),
    ("aio_notify_bug/BUG", "req_cleared"): ("refuted", 1.07, 742),
    ("aio_notify_accept", "event_toggles"): ("holds", 1.13, None),
    ("aio_notify_accept", "req_cleared"): ("holds", 1.05, None),
    ("aio_notify_accept/BUG1", "event_toggles"): ("refuted", 1.10, 888),
    ("aio_notify_accept/BUG1", "req_cleared"): ("holds", 1.08, None),
    ("aio_notify_accept/BUG2", "event_toggles"): ("refuted", 1.07, 416),
    ("aio_notify_accept/BUG2", "req_cleared"): ("refuted", 1.08, 424),
}


@dataclass(frozen=True)
class SpinResult:
    """One Spin run: ``verdict`` is ``holds``/``refuted``; ``source`` is ``measured`` or
    ``external`` (:data:`SPIN_EXTERNAL`, with ``reason`` why it was not measured)."""

    verdict: str
    seconds: float
    trail_steps: int | None
    source: str
    reason: str = ""


@dataclass(frozen=True)
class SpinRow:
    """Our verdict under one memory model next to Spin's on the same model."""

    protocol: str
    property: str
    memory: str
    verdict: str
    seconds: float
    cex_steps: int | None
    spin: SpinResult
    #: the counterexample is a proven shortest one (the exhaustive explicit search's, or
    #: z3's by deepening)
    cex_shortest: bool = False

    @builtins.property
    def ratio(self) -> float:
        """Our seconds over Spin's (below 1: faster than Spin end to end)."""
        return self.seconds / self.spin.seconds if self.spin.seconds else float("inf")


def run_spin(promela: Path, defines: Iterable[str], pan_flags: Iterable[str]) -> SpinResult:
    """Generate, compile and run Spin's verifier for ``promela`` in a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="aioctx-spin-") as tmp:
        model = Path(tmp) / "model.pml"
        shutil.copyfile(promela, model)
        t0 = time.perf_counter()
        for cmd in (
            ["spin", "-a", *(f"-D{d}" for d in defines), model.name],
            ["gcc", "-O2", "-w", "-o", "pan", "pan.c"],
        ):
            subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, timeout=300)
        out = subprocess.run(["./pan", *pan_flags], cwd=tmp, capture_output=True, text=True,
                             timeout=300)
        seconds = time.perf_counter() - t0
        errors = next((ln.split("errors:")[1].split()[0] for ln in out.stdout.splitlines()
                       if "errors:" in ln), None)
        if errors is None:
            raise RuntimeError(f"pan printed no error count for {promela.name}: {out.stdout!r}")
        trail = Path(tmp) / "model.pml.trail"
        steps = None
        if trail.exists():
            steps = sum(1 for ln in trail.read_text().splitlines()
                        if ln.strip() and not ln.startswith("-"))
        return SpinResult("refuted" if int(errors) else "holds", seconds, steps, "measured")


def _spin_for(key: tuple[str, str], promela_dir: Path | None) -> SpinResult:
    file, defines, flags, _ = notify.SPIN_MODELS[key]
    missing = [t for t in ("spin", "gcc") if shutil.which(t) is None]
    reason = ""
    if promela_dir is None:
        reason = "no Promela directory given"
    elif not (promela_dir / file).exists():
        reason = f"{promela_dir / file} not found"
    elif missing:
        reason = f"{' and '.join(missing)} not installed"
    if not reason:
        assert promela_dir is not None
        return run_spin(promela_dir / file, defines, flags)
    v, s, n = SPIN_EXTERNAL[key]
    return SpinResult(v, s, n, "external", reason)


def run_spin_benchmark(
    promela_dir: str | os.PathLike[str] | None = None,
    memories: Iterable[str] = notify.MEMORY_MODELS,
    *,
    depth: int = 6,
    out: Callable[[str], None] = print,
) -> list[SpinRow]:
    """Every Spin model: Spin once, ours under each memory model; prints the table.

    Ours as ``aioctx-verify prove`` runs it: the explicit search decides and gives a
    shortest counterexample; z3 checks it to ``depth`` moves (``PROTOCOL_Z3_DEPTH``); no
    wall-clock budget anywhere."""
    env = os.environ.get("AIOCTX_SPIN_PROMELA_DIR")
    folder = promela_dir if promela_dir is not None else env
    pdir = Path(folder) if folder else None
    mems = tuple(memories)
    rows: list[SpinRow] = []
    out(_HEADER)
    for key in notify.SPIN_MODELS:
        spin = _spin_for(key, pdir)
        for mem in mems:
            v = notify.check_protocol(key[0], mem, key[1], confirm_depth=depth)
            row = SpinRow(key[0], key[1], mem, v.verdict, v.seconds, v.counterexample_steps,
                          spin, v.states is not None or v.z3_verdict == "refuted")
            rows.append(row)
            out(_format(row))
    reasons = sorted({r.spin.reason for r in rows if r.spin.source == "external"})
    if reasons:
        out("Spin figures external (not measured in this run): " + "; ".join(reasons))
    out("cex: steps of our counterexample, a shortest one (breadth-first over every "
        f"reachable state and fairness units; z3 agrees to {depth} moves); w: not proven "
        "shortest.")
    out(f"Buffers: {notify.BUFFER_CAPACITY} entries each; states reachable only by "
        "overflowing them are not explored.")
    return rows


_HEADER = (f"{'model':<24} {'property':<16} {'mem':<4} {'ours':<8} {'ours s':>7} "
           f"{'cex':>4} | {'spin':<8} {'spin s':>7} {'trail':>6} {'source':<9} | {'ratio':>6}")


def _format(r: SpinRow) -> str:
    cex = "-" if r.cex_steps is None else f"{r.cex_steps}{'' if r.cex_shortest else 'w'}"
    trail = "-" if r.spin.trail_steps is None else str(r.spin.trail_steps)
    return (f"{r.protocol:<24} {r.property:<16} {r.memory:<4} {r.verdict:<8} "
            f"{r.seconds:>7.2f} {cex:>4} | {r.spin.verdict:<8} {r.spin.seconds:>7.2f} "
            f"{trail:>6} {r.spin.source:<9} | {r.ratio:>6.2f}")


def main(argv: list[str] | None = None) -> int:
    """``python3 -m aioctx_verify.stress.bench._spin [promela_dir]``."""
    args = sys.argv[1:] if argv is None else argv
    run_spin_benchmark(args[0] if args else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
