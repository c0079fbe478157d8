"""Generated mutants (``aioctx-verify mutate``): the operators, the exact edits they make,
that applying one restores impl, stable names, and the command's output and errors.

Every test is bounded by work (a fixed number of mutants, checkers with a small work
budget), never by wall-clock time.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from aioctx_verify import impl
from aioctx_verify.cli import main
from aioctx_verify.stress.mutation import (
    EQUIVALENT,
    OPERATORS,
    GeneratedMutant,
    MutantLike,
    generate_mutants,
    generated_mutant,
    run_mutation,
    sample_mutants,
    sanity_check,
    stale_equivalents,
    stale_functions,
)


@pytest.fixture(scope="module")
def mutants() -> list[GeneratedMutant]:
    ms = generate_mutants()
    if stale_functions():
        pytest.skip(f"impl changed on disk since it was imported: {stale_functions()}")
    return ms


def test_pytest_leaves_impl_bytecode_alone() -> None:
    """The suite's pytest plugin makes pytest rewrite the asserts of its whole distribution,
    impl included, unless impl's modules opt out; rewritten impl no longer matches its
    source, and every mutation test would skip as "impl changed on disk"."""
    import types

    import aioctx_verify.impl as impl_pkg
    from aioctx_verify.stress.mutation._operators import _impl_files

    rewritten = []
    for f in _impl_files():
        mod = importlib.import_module(f"aioctx_verify.impl.{f.removesuffix('.py')}")
        todo: list[types.CodeType] = [
            v.__code__ for v in vars(mod).values() if isinstance(v, types.FunctionType)
        ]
        for cls in (v for v in vars(mod).values() if isinstance(v, type)):
            todo += [v.__code__ for v in vars(cls).values() if isinstance(v, types.FunctionType)]
        while todo:
            code = todo.pop()
            if any(n.startswith("@py_assert") for n in code.co_varnames):
                rewritten.append(f"{f}:{code.co_name}")
            todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    assert impl_pkg.__doc__ is not None and "PYTEST_DONT_REWRITE" in impl_pkg.__doc__
    assert rewritten == [], rewritten
    assert stale_functions() == []


def _per_operator(ms: list[GeneratedMutant], n: int) -> Iterator[GeneratedMutant]:
    """Up to ``n`` mutants of each operator, spread over its list."""
    for op in OPERATORS:
        of = [m for m in ms if m.operator == op]
        step = max(1, len(of) // n)
        yield from of[::step][:n]


def test_every_operator_makes_a_mutant_on_impl(mutants: list[GeneratedMutant]) -> None:
    counts = {op: sum(1 for m in mutants if m.operator == op) for op in OPERATORS}
    assert all(counts.values()), counts
    assert all(m.file.startswith("impl/") for m in mutants)


def test_names_are_unique_and_spell_out_the_site(mutants: list[GeneratedMutant]) -> None:
    names = [m.name for m in mutants]
    assert len(names) == len(set(names))
    for m in mutants:
        assert m.name == f"{m.operator}:{m.file}:{m.line}:{m.col}:{m.variant}"


def test_mutated_source_differs_exactly_where_named(mutants: list[GeneratedMutant]) -> None:
    """Same number of lines; the changed lines start at the named line and stay inside the
    named function; the rest of impl's file is byte for byte the same."""
    import ast

    for m in _per_operator(mutants, 6):
        old = m.original_source().splitlines(keepends=True)
        new = m.mutated_lines()
        assert len(new) == len(old), m.name
        changed = [i + 1 for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        assert changed, m.name
        assert tuple(changed) == m.changed_lines
        assert min(changed) == m.line, (m.name, changed)
        fn = next(
            n
            for n in ast.walk(ast.parse(m.original_source()))
            if isinstance(n, ast.FunctionDef)
            and n.lineno <= m.line <= (n.end_lineno or n.lineno)
            and n.name == m.function.rsplit(".", 1)[-1]
        )
        assert all(fn.lineno <= i <= (fn.end_lineno or fn.lineno) for i in changed), m.name
        ast.parse(m.mutated_source())  # still Python
        assert m.before and m.after and m.before != m.after, m.name


def _slot(m: GeneratedMutant) -> tuple[object, str]:
    unit = m._unit
    return unit.owner, unit.attr


def test_apply_patches_the_function_and_restores_impl(mutants: list[GeneratedMutant]) -> None:
    picked: dict[str, GeneratedMutant] = {}
    for m in mutants:
        kind = m._unit.role if isinstance(m._unit.owner, type) else "module"
        picked.setdefault(kind, m)
    assert {"function", "module"} <= set(picked), picked
    for m in picked.values():
        owner, attr = _slot(m)
        before = vars(owner)[attr]
        aliases = {mod: vars(mod)[attr] for mod in (impl, impl.qemu) if attr in vars(mod)}
        with m.apply():
            assert vars(owner)[attr] is not before, m.name
        assert vars(owner)[attr] is before, m.name
        for mod, value in aliases.items():
            assert vars(mod)[attr] is value
        # A mutant is also a MutantLike, and applies again after being removed.
        like: MutantLike = m
        with like.apply():
            pass
        assert vars(owner)[attr] is before


def test_module_function_aliases_are_patched_and_restored(
    mutants: list[GeneratedMutant],
) -> None:
    m = next(x for x in mutants if x.function == "main_context")
    from aioctx_verify.impl import _iothread

    orig = _iothread.main_context
    assert impl.main_context is orig
    with m.apply():
        assert _iothread.main_context is not orig
        assert impl.main_context is _iothread.main_context
    assert _iothread.main_context is orig and impl.main_context is orig


def test_names_are_stable_and_rebuild_their_mutant(mutants: list[GeneratedMutant]) -> None:
    again = generate_mutants()
    assert [m.name for m in again] == [m.name for m in mutants]
    for m in _per_operator(mutants, 2):
        back = generated_mutant(m.name)
        assert (back.before, back.after, back.changed_lines) == (m.before, m.after, m.changed_lines)
    code = (
        "from aioctx_verify.stress.mutation import generate_mutants, stale_functions\n"
        "names = [m.name for m in generate_mutants()]\n"
        "print('STALE' if stale_functions() else '\\n'.join(names))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    folder = Path(impl.__file__ or "").parent
    texts = {m.file: m.original_source() for m in mutants}
    edited = [f for f, t in texts.items() if (folder / Path(f).name).read_text() != t]
    if out == ["STALE"] or edited:
        pytest.skip(f"impl changed on disk while the test ran: {edited}")
    assert out == [m.name for m in mutants]


@pytest.mark.parametrize("bad", ["nope:impl/_context.py:1:0:x", "fence-drop:impl/x.py:1:0:drop",
                                 "fence-drop:impl/_context.py:1:0:drop", "garbage"])
def test_unknown_names_are_refused(bad: str) -> None:
    with pytest.raises(KeyError):
        generated_mutant(bad)


def test_sampling_is_deterministic_and_covers_every_operator(
    mutants: list[GeneratedMutant],
) -> None:
    a = sample_mutants(mutants, 30, 5)
    b = sample_mutants(mutants, 30, 5)
    assert [m.name for m in a] == [m.name for m in b]
    assert len(a) == 30
    assert {m.operator for m in a} == set(OPERATORS)
    assert sample_mutants(mutants, None, 5) == mutants
    assert [m.name for m in sample_mutants(mutants, 30, 6)] != [m.name for m in a]


def test_sanity_run_passes_unmutated_and_catches_a_lost_wakeup(
    mutants: list[GeneratedMutant],
) -> None:
    assert sanity_check(None) is None
    dropped = next(
        m for m in mutants if m.operator == "notify-drop" and m.function == "BH.schedule"
    )
    assert sanity_check(dropped) is not None


def test_equivalent_entries_name_generated_mutants_with_a_reason(
    mutants: list[GeneratedMutant],
) -> None:
    """Every review is keyed by a mutant that exists now (a changed statement makes its
    review stale: re-review it), with a one-line reason."""
    keys = {m.key for m in mutants}
    for key, reason in EQUIVALENT.items():
        assert key.split(":")[0] in OPERATORS, key
        assert key in keys, f"stale equivalent review (re-review it): {key}"
        assert reason.strip() and "\n" not in reason, key
    assert stale_equivalents() == []


def test_mutant_keys_are_unique_and_do_not_depend_on_line_numbers(
    mutants: list[GeneratedMutant],
) -> None:
    assert len({m.key for m in mutants}) == len(mutants)
    m = next(m for m in mutants if m.operator == "swap-adjacent")
    assert f":{m.line}:" not in m.key and m.function in m.key
    assert " ".join(m.before.split()) in m.key


def test_lock_move_out_moves_only_statements_that_touch_shared_state(
    mutants: list[GeneratedMutant],
) -> None:
    """Moving ``keep = []`` (local names only) out of a lock changes nothing another thread
    can see: no such mutant is made; moving an attribute access or a call is."""
    import ast

    from aioctx_verify.stress.mutation._operators import _touches_shared

    def one(text: str) -> ast.stmt:
        return ast.parse(text).body[0]

    assert not _touches_shared(one("keep = []"))
    assert not _touches_shared(one("n = a + b"))
    assert _touches_shared(one("self.n += 1"))
    assert _touches_shared(one("q.append(x)"))
    assert _touches_shared(one("x = f()"))
    moved = [m for m in mutants if m.operator == "lock-move-out"]
    assert moved and not any("keep = []" in m.key for m in moved)
    assert any(m.function == "AioContext._reclaim_bhs" for m in moved)


def test_a_critical_section_taken_by_hand_gets_lock_move_out_mutants(
    mutants: list[GeneratedMutant],
) -> None:
    """``x.acquire(); try: ... finally: x.release()`` is a critical section like ``with x:``:
    RFifoLock's lock and unlock get both variants, and the ticket read moved before the
    mutex (two threads can draw one ticket) is killed."""
    by_hand = {(m.function, m.variant): m for m in mutants if m.operator == "lock-move-out"
               and m.function in ("RFifoLock.lock", "RFifoLock.unlock")}
    assert set(by_hand) == {(f, v) for f in ("RFifoLock.lock", "RFifoLock.unlock")
                            for v in ("first", "last")}
    ticket = by_hand[("RFifoLock.lock", "first")]
    assert ticket.key.endswith("-> ticket = self._tail; mutex.acquire(); try:"), ticket.key
    r = run_mutation("smoke", names=[ticket.name], checkers=["explore_random"], control=False)
    assert [x.status for x in r.runs] == ["killed"], r.format()


def test_campaign_report_counts_and_score(mutants: list[GeneratedMutant]) -> None:
    """The model checker has no counterpart of a generated mutant: every one survives."""
    names = [m.name for m in _per_operator(mutants, 2) if m.key not in EQUIVALENT][:3]
    r = run_mutation("smoke", names=names, checkers=["model"], control=False)
    assert [x.mutant.name for x in r.runs] == names
    assert r.score == 0.0 and len(r.survivors) == 3
    assert all(x.outcomes[0][1].verdict == "n/a" for x in r.runs)
    j = r.to_json()
    assert j["run"] == 3 and j["killed"] == 0 and len(j["survivors"]) == 3


def _cli(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["mutate", *args])
    return res.exit_code, res.stdout, res.stderr


def test_mutate_limit_json_writes_the_score(tmp_path: Path) -> None:
    out = tmp_path / "mutate.json"
    code, stdout, stderr = _cli(
        ["--budget", "2", "--limit", "3", "--checkers", "model,explore_random",
         "--no-control", "--seed", "1", "--json", str(out)]
    )
    assert code == 0, stdout + stderr
    doc = json.loads(out.read_text())
    for key in ("score", "killed", "survived", "equivalent", "trivially_killed", "run",
                "total_mutants", "sampled", "sampled_fraction", "per_operator", "survivors",
                "mutants"):
        assert key in doc, key
    assert doc["run"] == doc["sampled"] == 3
    assert doc["killed"] + doc["survived"] + doc["equivalent"] == 3
    assert doc["total_mutants"] == len(generate_mutants())
    if doc["run"] - doc["equivalent"]:
        assert doc["score"] == pytest.approx(
            doc["killed"] / (doc["run"] - doc["equivalent"]), abs=1e-3
        )
    assert "mutation score:" in stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--operators", "nope"],
        ["--limit", "0"],
        ["--budget", "abc"],
        ["--budget", "-3"],
        ["--checkers", "nope"],
        ["--mutants", "fence-drop:impl/_context.py:1:0:drop"],
        ["--limit", "3", "--all"],
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str]) -> None:
    code, stdout, stderr = _cli(args)
    assert code == 2, (args, stdout, stderr)
    assert "Traceback" not in stdout + stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0], stderr


def test_list_prints_every_mutant_and_the_counts(mutants: list[GeneratedMutant]) -> None:
    code, stdout, _ = _cli(["--list", "--operators", "fence-drop,notify-drop"])
    assert code == 0
    listed = [ln.split()[0] for ln in stdout.splitlines() if ln.startswith(("fence-", "notify-"))]
    want = [m.name for m in mutants if m.operator in ("fence-drop", "notify-drop")]
    assert [n for n in listed if n.count(":") == 4] == want


def test_a_generated_mutant_kill_prints_a_line_that_replays(
    mutants: list[GeneratedMutant],
) -> None:
    """A kill of a generated mutant prints ``--mutant operator:impl/...``, and that line
    reruns it: the name rebuilds the mutant (resolve_mutant), the schedule the run."""
    import re
    import shlex

    from aioctx_verify.stress.mutation import CellBudget, resolve_mutant, run_checker

    (m,) = [
        g for g in mutants
        if g.operator == "notify-drop" and g.function == "AioContext.bh_schedule_oneshot"
    ]
    assert resolve_mutant(m.name).name == m.name
    out = run_checker(
        "explore_random", m.as_mutant(("kick_race", "bh_wake_tso")), 0, CellBudget(120, 600.0)
    )
    assert out.killed, out.detail
    (line,) = re.findall(r"aioctx-verify replay --mutant \S+ '[^']*'", out.detail)
    assert f"--mutant {m.name} " in line
    r = CliRunner().invoke(main, shlex.split(line)[1:])
    assert r.exit_code == 1, r.output
    assert re.search(r"^property: LIVE", r.output, re.M), r.output


def test_ordering_mutants_get_the_c11_probes_first(mutants: list[GeneratedMutant]) -> None:
    """A fence or an ordering only shows under weak memory, a load-side one only under
    c11: those probes come first; other operators are ranked by coverage alone."""
    from aioctx_verify.stress.mutation import PROBES
    from aioctx_verify.stress.mutation._operators import probe_coverage, probes_for

    names = ("bh_ping", "bh_ping_tso", "bh_ping_c11")
    cov = probe_coverage(names, real=False)
    (relax,) = [m for m in mutants if m.operator == "order-relax" and m.function.endswith(
        "BH.schedule") and "scheduled.exchange(True, _SEQ)" in m.before]
    ranked = probes_for(relax, cov)
    assert ranked[0] == "bh_ping_c11" and set(ranked) == set(names), ranked
    assert [PROBES[n].memory for n in ranked] == ["c11", "tso", "sc"]
    (other,) = [m for m in mutants if m.operator == "rmw-split" and m.function.endswith(
        "BH.schedule")]
    assert set(probes_for(other, cov)) == set(names)


def test_generated_programs_are_chosen_by_the_mutants_lines(
    mutants: list[GeneratedMutant],
) -> None:
    """The races and generated columns give a generated mutant the generated programs whose
    run executes its lines (coverage), as probes are chosen; a catalogue mutant (no site)
    gets the first ones."""
    from aioctx_verify.stress.explore import generate
    from aioctx_verify.stress.mutation import CATALOGUE
    from aioctx_verify.stress.mutation._matrix import _generated_for
    from aioctx_verify.stress.mutation._operators import generated_coverage

    (g,) = [m for m in mutants if m.operator == "acqrel-drop"
            and m.function.endswith("DataplaneDevice.guest_submit")]
    m = g.as_mutant()
    assert m.site == (g.file, tuple(g.cover))
    chosen = _generated_for(m, 0, 3)
    cov = generated_coverage(0, chosen)
    assert len(chosen) == 3 and len(set(chosen)) == 3
    for i in chosen:
        assert generate(0, i).uses_dataplane(), i
        assert sum(cov[i][g.file][n] for n in g.cover) > 0, i
    assert _generated_for(CATALOGUE[0], 0, 3) == [0, 1, 2]


def test_generated_programs_are_ranked_by_the_threads_at_the_mutants_site(
    mutants: list[GeneratedMutant],
) -> None:
    """A concurrency bug needs two threads at its site: the program whose run has the
    most threads executing the mutant's lines goes first, and a quarter of the places
    go to other reaching programs (seeded), not only the top of the rank."""
    from aioctx_verify.stress.mutation._matrix import GEN_POOL, _generated_for
    from aioctx_verify.stress.mutation._operators import generated_threads

    (g,) = [m for m in mutants if m.operator == "acqrel-drop"
            and m.function == "Clocks._register"]
    who = generated_threads(0, range(GEN_POOL))

    def threads(i: int) -> int:
        return len(set().union(*(who[i][g.file].get(k, set()) for k in g.cover)))

    best = max(threads(i) for i in range(GEN_POOL))
    assert best >= 2  # some program registers clocks from two threads
    chosen = _generated_for(g.as_mutant(), 0, 8)
    assert threads(chosen[0]) == best
    assert len(set(chosen)) == 8 and all(threads(i) >= 1 for i in chosen)
    assert _generated_for(g.as_mutant(), 0, 8) == chosen  # deterministic


def test_a_moved_or_unlocked_block_covers_every_line_of_it(
    mutants: list[GeneratedMutant],
) -> None:
    """A compound statement moved out of its lock, or a body whose lock is dropped, runs
    unlocked on every line: all of them are the mutant's site (coverage, program choice,
    the conflict-directed focus), not only the first, which may touch nothing shared."""
    (moved,) = [m for m in mutants if m.operator == "lock-move-out" and m.variant == "last"
                and m.function == "Clocks.start_virtual"]
    assert moved.cover == tuple(range(moved.line, moved.line + 3)), moved.cover  # if + body
    (dropped,) = [m for m in mutants if m.operator == "acqrel-drop"
                  and m.function == "Clocks.virtual_running"]
    assert dropped.cover == (dropped.line, dropped.line + 1), dropped.cover  # with + body


def test_a_timer_scale_below_one_is_refused_in_lockstep_with_the_reference() -> None:
    """The single-thread lockstep makes timers of several scales and tries scales the API
    refuses (zero, negative): an impl that accepts a zero scale differs from the reference,
    which refuses it."""
    names = [m.name for m in generate_mutants() if m.operator == "off-by-one"
             and m.function == "QEMUTimer.__init__" and m.variant == "boundary"]
    assert len(names) == 1
    r = run_mutation("smoke", names=names, checkers=["stateful_single"], control=False)
    assert [x.status for x in r.runs] == ["killed"], r.format()
