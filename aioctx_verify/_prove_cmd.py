"""``aioctx-verify prove``: z3 proofs of P1, P2, P3 over the model (:func:`model.prove`).

For each model configuration: the strengthening invariants of
:mod:`aioctx_verify.model._z3_invariants` and the properties' z3 forms
(:mod:`aioctx_verify.properties._z3`) go through Houdini (what is kept is proven inductive),
bounded model checking to ``--depth`` decides the properties not proven (a counterexample is
a shortest path, printed like the model search's), and k-induction up to ``--max-k`` tries
to close the rest.  Verdicts: ``proven`` (every depth), ``bounded`` (no violation within the
depth, induction not closed), ``refuted`` (with the counterexample's length).  ``LIVE`` (a
rest state stays reachable: no lost wake-up, no busy loop): z3 searches ``--live-depth``
steps for a deadlock or a weakly fair lasso that cannot rest
(:mod:`aioctx_verify.model._z3_live`), and the exhaustive explicit check covers every
reachable state when there are at most ``--live-states``: ``refuted`` with the shortest
witness, ``proven`` (the explicit check found none), else ``bounded``.

``--config`` takes a budget tier (``smoke``, ``pr``, ``nightly``: the configurations the
campaign's model step searches), ``bug=<flag>`` (a mutant of the model in its smallest
exhibiting configuration, :data:`model.BUG_CONFIGS`), ``bug=all``, or sizes
``threads=<n>,bhs=<n>,max_depth=<n>,ops=<n>,handlers=<n>,timers=<n>``; the default is
``smoke``.  ``--json`` writes ``{"results": [{"model", "memory", "property", "verdict",
"depth", "seconds", "counterexample_steps"}], "invariants": {...}}``: ``depth`` is the
counterexample's length (refuted), the k at which induction closed (proven; 1: the
property is part of the inductive invariant) or the depth bounded model checking reached
(bounded); ``seconds`` the time to that verdict within its configuration; ``memory`` is
``sc`` (the model is sequentially consistent); ``invariants`` lists per configuration the
strengthening invariants proven and those dropped, with the reason.

Exit status: 0 when every verdict is as expected (no property refuted in a correct
configuration; in a mutant's configuration, the property the mutant breaks refuted: for a
liveness mutant, when its witness lies within ``--live-depth`` or the explicit check ran),
1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aioctx_verify._paths import check_json_path

if TYPE_CHECKING:
    from aioctx_verify.engine import Engine

__all__ = ["ConfigSpec", "ProvedConfig", "parse_config", "prove_cmd", "prove_one"]

#: The safety properties the prover decides (Houdini, BMC, k-induction), and liveness,
#: decided by a bounded search for deadlocks and weakly fair lassos.
PROVED = ("P1", "P2", "P3")
LIVE = "LIVE"
#: The lasso search's default depth (it cannot close; the explicit check can).
LIVE_DEPTH = 8
#: The explicit liveness check's default state budget (work, not seconds): above it, LIVE
#: stays ``bounded`` at ``--live-depth``.
LIVE_STATES = 200_000
_FIELDS = ("threads", "bhs", "max_depth", "ops", "handlers", "timers")
_SIZE = re.compile(r"^((?:[a-z_]+=\d+)(?:,[a-z_]+=\d+)*)$")


@dataclass(frozen=True)
class ConfigSpec:
    """A model configuration by description (picklable): a mutant's or sizes."""

    bug: str | None = None
    sizes: tuple[tuple[str, int], ...] = ()

    def config(self) -> Any:
        from aioctx_verify.model import ModelConfig, bug_config

        if self.bug is not None:
            return bug_config(self.bug)
        return _sized(ModelConfig, dict(self.sizes))


@dataclass(frozen=True)
class ProvedConfig:
    """One configuration's verdicts, as plain data (rows of the JSON, texts to print)."""

    model: str
    bug: str | None
    rows: tuple[dict[str, Any], ...]
    kept: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    strengthening: str
    counterexamples: tuple[tuple[str, str], ...]  # (property, format_path text)
    seconds: float
    #: per counterexample: (property, steps as (thread, role, action, trace events)).
    paths: tuple[tuple[str, tuple[tuple[int, str, str, str], ...]], ...] = ()
    #: a mutant's counterexamples replayed on impl (stress/explore/_from_model.py):
    #: (property, verdict, text: the replay line or why not)
    impl: tuple[tuple[str, str, str], ...] = ()

    @property
    def as_expected(self) -> bool:
        """No refutation in a correct configuration; a mutant's safety bug refuted."""
        from aioctx_verify.model import BUG_PROPERTY

        refuted = {r["property"] for r in self.rows if r["verdict"] == "refuted"}
        if any(verdict == "false alarm" for _, verdict, _ in self.impl):
            return False  # the correct impl failed along the model's path: a bug of ours
        if self.bug is None:
            return not refuted
        want = BUG_PROPERTY.get(self.bug)
        checked = {r["property"] for r in self.rows}
        return want not in checked or want in refuted


def _sized(make: Any, sizes: dict[str, int]) -> Any:
    """``ModelConfig`` with the given sizes (the others at their defaults)."""
    default = make()
    return make(**{f: sizes.get(f, getattr(default, f)) for f in _FIELDS})


def parse_config(text: str) -> list[ConfigSpec]:
    """The configurations one ``--config`` value names.

    Raises:
        click.BadParameter: an unknown tier, mutant or field, or a malformed spec.
    """
    from aioctx_verify._campaign import plan_campaign
    from aioctx_verify.model import BUG_CONFIGS, ModelConfig, ModelError

    spec = text.strip().removeprefix("model:")
    if spec in ("smoke", "pr", "nightly"):
        return [
            ConfigSpec(sizes=tuple(sorted((k, int(str(v))) for k, v in size.items())))
            for size in plan_campaign(spec).model_configs()
        ]
    if spec.startswith("bug="):
        flag = spec.removeprefix("bug=")
        if flag == "all":
            return [ConfigSpec(bug=f) for f in sorted(BUG_CONFIGS)]
        if flag not in BUG_CONFIGS:
            raise click.BadParameter(
                f"unknown model bug {flag!r}; known: all, {', '.join(sorted(BUG_CONFIGS))}",
                param_hint="--config",
            )
        return [ConfigSpec(bug=flag)]
    if not _SIZE.match(spec):
        raise click.BadParameter(
            f"malformed model configuration {text!r}: use smoke, pr, nightly, bug=<flag>, "
            "bug=all or threads=<n>,bhs=<n>,max_depth=<n>,ops=<n>,handlers=<n>,timers=<n>",
            param_hint="--config",
        )
    sizes: dict[str, int] = {}
    for item in spec.split(","):
        key, value = item.split("=")
        if key not in _FIELDS:
            raise click.BadParameter(
                f"unknown model field {key!r}; use {', '.join(_FIELDS)}", param_hint="--config"
            )
        sizes[key] = int(value)
    try:
        _sized(ModelConfig, sizes)
    except ModelError as e:
        raise click.BadParameter(str(e), param_hint="--config") from None
    return [ConfigSpec(sizes=tuple(sorted(sizes.items())))]


def prove_one(spec: ConfigSpec, depth: int, max_k: int, live_depth: int = LIVE_DEPTH,
              live_states: int = LIVE_STATES) -> ProvedConfig:
    """Prove P1, P2, P3 at one configuration, search liveness witnesses to ``live_depth``
    steps (0: no liveness search) and check liveness over all reachable states when there
    are at most ``live_states``; runs in a worker process with ``--jobs``."""
    from aioctx_verify.model import prove
    from aioctx_verify.properties import PROPERTIES

    cfg = spec.config()
    props = {p: PROPERTIES[p].z3_formula for p in PROVED}
    live = (LIVE, PROPERTIES[LIVE].z3_formula, live_depth) if live_depth > 0 else None
    rep = prove(cfg, props, depth=depth, max_k=max_k, liveness=live, live_states=live_states)
    rows = tuple(
        {
            "model": cfg.label(),
            "memory": "sc",
            "property": r.property,
            "verdict": r.verdict,
            "depth": r.depth,
            "seconds": round(r.seconds, 3),
            "counterexample_steps": r.counterexample_steps,
            # LIVE's exhaustive explicit check: the reachable states it covered
            "states": r.states,
            # LIVE's witness: a deadlock, or a lasso that loops back to the state after
            # step N (None: no witness, or a safety property's counterexample).
            "witness": _witness(r.counterexample),
        }
        for r in rep.results
    )
    cex = tuple(
        (r.property, r.counterexample.format(cfg))
        for r in rep.results if r.counterexample is not None
    )
    paths = tuple(
        (r.property, tuple(
            (a.thread, cfg.roles[a.thread], f"{a.step}({a.arg if a.arg >= 0 else ''})",
             " ".join(f"{k}:{o}" for k, o, _ in a.events))
            for a in r.counterexample.path
        ))
        for r in rep.results if r.counterexample is not None
    )
    impl = tuple(
        (r.property, *_on_impl(spec.bug, r.counterexample.path))
        for r in rep.results
        if spec.bug is not None and r.counterexample is not None
    )
    st = rep.strengthening
    return ProvedConfig(
        model=cfg.label(), bug=spec.bug, rows=rows,
        kept=tuple(i.name for i in st.kept),
        dropped=tuple((i.name, why) for i, why in st.dropped),
        strengthening=st.summary(), counterexamples=cex, seconds=rep.seconds, paths=paths,
        impl=impl,
    )


def _on_impl(flag: str, path: Any) -> tuple[str, str]:
    """A model counterexample of mutant ``flag`` guided through impl with the catalogue
    mutant applied (the same property must fail) and without it (nothing may fail):
    (verdict, the replay line, or why not and the model's replay line)."""
    from aioctx_verify.stress.explore import FromModelError, replay_model_path

    try:
        r = replay_model_path(flag, path)
    except FromModelError as e:
        why = str(e)
        verdict = "not mirrored"
    else:
        if r.verdict == "reproduced":
            left = "" if r.complete else f" (after {r.matched} of {r.path_length} steps guided)"
            return r.verdict, f"{r.expected} on impl{left}, correct impl clean | {r.replay}"
        why, verdict = r.reason, r.verdict
    # impl cannot replay it (no counterpart, or the path leaves impl): the model's own line
    return verdict, f"{why} | aioctx-verify replay 'model:bug={flag}'"


def barrier_rows(budget: str, jobs: int = 1,
                 progress: Callable[[str], None] | None = None,
                 engine: Engine | None = None) -> list[dict[str, Any]]:
    """The barrier audit (:func:`aioctx_verify.stress.mutation._barriers.audit_barriers`)
    as plain rows: site, change, verdict, memory, detail (the reason, and the replay line
    of a necessary barrier's counterexample).  ``engine``: run its searches as shards
    there (a campaign's engine) rather than in ``jobs`` processes."""
    from aioctx_verify.stress.mutation import audit_barriers

    rows = []
    for v in audit_barriers(budget, jobs=jobs, progress=progress, engine=engine):
        detail = v.reason
        if v.counterexample is not None:
            detail += f" | {v.counterexample.replay}"
        rows.append({
            "site": f"{Path(v.file).name}:{v.line} ({v.function})",
            "change": f"{v.kind}: {v.change}",
            "verdict": v.verdict,
            "memory": v.memory,
            "detail": detail,
        })
    return rows


#: QEMU's aio_notify protocols (model/_notify.py) the prover checks: ``fixed`` (the
#: protocols QEMU ships), ``all`` (their bug variants too), per campaign budget ``smoke``
#: (the protocol of today's QEMU only).
PROTOCOL_SETS = ("none", "smoke", "fixed", "all")
#: How deep z3 checks each protocol verdict of the explicit search (work, not seconds): it
#: must find a counterexample of the same length when the shortest one is that short, and
#: none otherwise.  The explicit search decides, over every reachable state, and its
#: counterexample is a shortest one at any depth.
PROTOCOL_Z3_DEPTH = 6


def protocol_names(which: str) -> list[str]:
    """The protocols a set of :data:`PROTOCOL_SETS` names, in order."""
    from aioctx_verify.model._notify import PROTOCOLS

    if which == "none":
        return []
    if which == "smoke":
        return ["aio_notify_accept"]
    return [p for p in PROTOCOLS if which == "all" or "/" not in p]


def protocol_rows(which: str, depth: int = PROTOCOL_Z3_DEPTH) -> list[dict[str, Any]]:
    """Verdicts of QEMU's aio_notify protocols under sc, tso and pso, as rows of the
    ``prove`` JSON plus ``expected`` (a fixed protocol holds; a bug variant is refuted for
    some property and memory model, checked per variant by :func:`protocols_as_expected`)
    and ``counterexample`` (its text)."""
    return [row for proto in protocol_names(which) for row in protocol_rows_of(proto, depth)]


def protocol_rows_of(proto: str, depth: int = PROTOCOL_Z3_DEPTH) -> list[dict[str, Any]]:
    """The rows of :func:`protocol_rows` for one protocol (a campaign's shard)."""
    from aioctx_verify.model._notify import (
        MEMORY_MODELS,
        PROPERTIES,
        check_protocol,
        replay_line,
    )

    rows = []
    for prop in PROPERTIES[proto.split("/")[0]]:
        for mem in MEMORY_MODELS:
            v = check_protocol(proto, mem, prop, confirm_depth=depth)
            rows.append({
                "model": v.model, "memory": mem, "property": v.property,
                "verdict": v.verdict, "depth": v.depth, "seconds": round(v.seconds, 3),
                "counterexample_steps": v.counterexample_steps, "witness": None,
                "states": v.states,
                "replay": replay_line(v) if v.verdict == "refuted" else None,
                "protocol": proto, "counterexample": v.counterexample,
            })
    return rows


def protocols_as_expected(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The protocols whose verdicts are not as Spin's: a fixed one refuted, or a bug
    variant refuted nowhere."""
    wrong = []
    for proto in dict.fromkeys(r["protocol"] for r in rows):
        mine = [r for r in rows if r["protocol"] == proto]
        refuted = any(r["verdict"] == "refuted" for r in mine)
        if refuted != ("/" in proto):
            wrong.append(proto)
    return wrong


def _witness(cex: Any) -> str | None:
    loop = getattr(cex, "loop", -1)
    if cex is None or loop == -1:
        return None
    return "deadlock" if loop is None else f"lasso from step {loop}"


def prove_all(
    specs: Sequence[ConfigSpec],
    depth: int,
    max_k: int,
    *,
    jobs: int = 1,
    done: Callable[[ProvedConfig], None] | None = None,
    live_depth: int = LIVE_DEPTH,
    live_states: int = LIVE_STATES,
) -> list[ProvedConfig]:
    """Every configuration of ``specs``, in order (``jobs`` worker processes)."""
    report = done or (lambda _: None)
    if jobs <= 1 or len(specs) <= 1:
        out = []
        for spec in specs:
            out.append(prove_one(spec, depth, max_k, live_depth, live_states))
            report(out[-1])
        return out
    with ProcessPoolExecutor(max_workers=min(jobs, len(specs))) as pool:
        futures = [pool.submit(prove_one, spec, depth, max_k, live_depth, live_states)
                   for spec in specs]
        results = []
        for f in futures:
            results.append(f.result())
            report(results[-1])
    return results


class _ProveJsonError(click.ClickException):
    exit_code = 2


def _row_line(row: dict[str, Any]) -> str:
    steps = row["counterexample_steps"]
    return (f"{row['model']:<46} {row['memory']:<6} {row['property']:<8} {row['verdict']:<8} "
            f"{row['depth']:>5} {row['seconds']:>8.2f} {'-' if steps is None else steps:>5} "
            f"{row.get('states') or '-':>7}")


@click.command(name="prove")
@click.option("--config", "configs", multiple=True, metavar="SPEC",
              help="smoke | pr | nightly | bug=<flag> | bug=all | threads=<n>,bhs=<n>,... "
                   "(repeatable; default: smoke).")
@click.option("--depth", type=click.IntRange(0, 500), default=20, show_default=True,
              help="Bounded model checking depth for properties induction does not prove.")
@click.option("--max-k", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Largest k tried by k-induction after bounded model checking.")
@click.option("--live-depth", type=click.IntRange(0, 200), default=LIVE_DEPTH,
              show_default=True,
              help="Steps of z3's search for deadlocks and weakly fair lassos that cannot "
                   "rest (LIVE); 0: no liveness search.")
@click.option("--live-states", type=click.IntRange(0, 10_000_000), default=LIVE_STATES,
              show_default=True,
              help="State budget of LIVE's exhaustive explicit check (proven, or the "
                   "shortest witness at any depth); 0: z3's bounded search alone.")
@click.option("--protocols", type=click.Choice(PROTOCOL_SETS), default="fixed",
              show_default=True,
              help="QEMU's aio_notify protocols under sc, tso and pso: fixed (as QEMU ships "
                   "them), all (with the bug variants of its Spin models), smoke (the "
                   "aio_notify_accept protocol only), none.")
@click.option("--barriers", "barrier_budget", type=click.Choice(["small", "default"]),
              default=None,
              help="Also audit every fence and non-relaxed ordering of impl (drop or weaken "
                   "each, search the programs that reach it exhaustively under sc, tso, "
                   "pso, and c11 for counterexamples); small: minutes less, decides less.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (one configuration each; the barrier audit's pool).")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              callback=check_json_path,
              help='Also write {"results": [...]} to this file (atomically).')
@click.option("--verbose", "-v", is_flag=True,
              help="Print every configuration's strengthening invariants, proven and dropped.")
def prove_cmd(configs: tuple[str, ...], depth: int, max_k: int, live_depth: int,
              live_states: int, protocols: str, barrier_budget: str | None, jobs: int,
              json_path: Path | None, verbose: bool) -> None:
    """Prove P1, P2, P3 over the model with z3 (Houdini, BMC, k-induction); search
    liveness witnesses (deadlocks, weakly fair lassos)."""
    from aioctx_verify.files import atomic_write_text
    from aioctx_verify.model._z3_invariants import STATED

    specs: list[ConfigSpec] = []
    for text in configs or ("smoke",):
        specs += parse_config(text)
    t0 = time.perf_counter()
    click.echo(f"{'model':<46} {'memory':<6} {'property':<8} {'verdict':<8} {'depth':>5} "
               f"{'seconds':>8} {'cex':>5} {'states':>7}")

    def show(pc: ProvedConfig) -> None:
        for row in pc.rows:
            click.echo(_row_line(row))
        if verbose:
            click.echo("  " + pc.strengthening.replace("\n", "\n  "))

    results = prove_all(specs, depth, max_k, jobs=jobs, done=show, live_depth=live_depth,
                        live_states=live_states if live_depth > 0 else 0)
    for pc in results:
        for prop, text in pc.counterexamples:
            click.echo(f"\nshortest counterexample to {prop} at {pc.model}:\n{text}")
            for p, verdict, why in pc.impl:
                if p == prop:
                    click.echo(f"on impl (mutant {pc.bug} applied): {verdict}: {why}")
    click.echo("\nstrengthening invariants (stated in model/_z3_invariants.py; each proven "
               "inductive per configuration, or dropped):")
    for inv in STATED:
        click.echo(f"  {inv}")
    click.echo("  local(t): each thread's reachable local states, computed by z3 per "
               "configuration")
    for pc in results:
        dropped = ", ".join(name for name, _ in pc.dropped) or "none"
        click.echo(f"  {pc.model}: {len(pc.kept)} proven; dropped: {dropped}")
    proto_rows = protocol_rows(protocols)
    if proto_rows:
        click.echo("\nQEMU's aio_notify protocols (model/_notify.py; store buffers of "
                   "2 entries):")
        for row in proto_rows:
            click.echo(_row_line(row))
        for row in proto_rows:
            if row["verdict"] == "refuted":
                click.echo(f"\nshortest counterexample to {row['property']} of "
                           f"{row['protocol']} under {row['memory']}:\n{row['counterexample']}"
                           f"\n{row['replay']}")
    wrong_protocols = protocols_as_expected(proto_rows)
    barriers: list[dict[str, Any]] = []
    if barrier_budget is not None:
        click.echo(f"\nbarrier audit ({barrier_budget} budget):")
        barriers = barrier_rows(barrier_budget, jobs)
        for b in barriers:
            click.echo(f"  {b['site']:<40} {b['change']:<34} {b['verdict']:<24} "
                       f"{b['memory'] or '-':<5} {b['detail'][:160]}")
    wrong = [pc for pc in results if not pc.as_expected]
    if wrong_protocols:
        click.echo(f"\nprotocols not as Spin found them: {', '.join(wrong_protocols)}")
    click.echo(f"\n{len(results) - len(wrong)} of {len(results)} configurations as expected, "
               f"{time.perf_counter() - t0:.1f} s")
    if json_path is not None:
        doc = {
            "results": [row for pc in results for row in pc.rows] + [
                {k: v for k, v in row.items() if k != "counterexample"} for row in proto_rows
            ],
            "invariants": {
                pc.model: {"proven": list(pc.kept),
                           "dropped": [{"name": n, "why": w} for n, w in pc.dropped]}
                for pc in results
            },
            "barriers": barriers,
        }
        try:
            atomic_write_text(json_path, json.dumps(doc, indent=2) + "\n")
        except OSError as e:
            raise _ProveJsonError(f"cannot write --json file {json_path}: {e.strerror}") from None
    sys.exit(1 if wrong or wrong_protocols else 0)
