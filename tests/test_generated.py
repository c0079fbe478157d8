"""Generated programs over impl's whole public API (stress.explore's ``search_generated``).

Generation is a function of (seed, index); generated programs are well-formed (they pass
on real threads and, under every strategy and memory model, on the controlled platform
with the unmutated impl); a seeded bug (a catalogue mutant) is found, shrunk to a smaller
program, and the replay line its failure prints reproduces it from the line alone; a
campaign's ``generated`` step reports such a failure with the same line.  Every search is
bounded by work (programs x schedules); wall-time bounds are only safety nets.
"""

from __future__ import annotations

import gc
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from aioctx_verify._campaign import plan_campaign, run_campaign
from aioctx_verify.cli import main
from aioctx_verify.stress import InvalidScheduleError
from aioctx_verify.stress.explore import (
    GenBudget,
    GenFailure,
    OpKind,
    generate,
    parse_gen_spec,
    replay_generated,
    run_real,
    search_generated,
)
from aioctx_verify.stress.mutation import mutant_by_name

#: A search that only the work bound ends (the time bound is a safety net).
UNBOUNDED = 1e9
MUTANTS = mutant_by_name()
#: The seeded bug the tests find: a P2 break every program that schedules a BH of an
#: IOThread's context can show (a mutant of the catalogue, not one the generator targets).
BUG = "schedule-takes-lock"
#: Another one for the campaign: a thread's one-shot into a context it does not run is
#: run inline (every program's scripts end with one into the main context).
CAMPAIGN_BUG = "current-ctx-misidentified"
LINE = re.compile(r"aioctx-verify replay (?:--mutant \S+ )?'gen:[^']*'")


@contextmanager
def applied(name: str) -> Iterator[None]:
    with MUTANTS[name].apply():
        yield


@pytest.fixture(autouse=True, scope="module")
def _collect_at_the_end() -> Iterator[None]:
    """Failures hold long traces: free them for the modules that run next in this worker
    (Hypothesis' first run in a thread walks the heap, and some later tests are timed)."""
    yield
    gc.collect()


def run_line(line: str) -> tuple[int, str]:
    argv = shlex.split(line)
    assert argv[:2] == ["aioctx-verify", "replay"], line
    r = CliRunner().invoke(main, argv[1:])
    assert "Traceback" not in r.output, r.output
    return r.exit_code, r.output


# -- generation -----------------------------------------------------------------------------
def test_generation_is_a_function_of_seed_and_index() -> None:
    for seed, index in [(0, 0), (3, 17), (-2, 5)]:
        a, b = generate(seed, index), generate(seed, index)
        assert a == b and a.listing() == b.listing()
    assert generate(0, 0) != generate(0, 1) and generate(0, 0) != generate(1, 0)


def test_programs_cover_the_api_and_stay_in_shape() -> None:
    kinds: set[OpKind] = set()
    behaviors: set[str] = set()
    for i in range(60):
        prog = generate(7, i)
        assert 2 <= prog.threads <= 4 and prog.size >= 2
        assert [op.uid for op in prog.ops()] == list(range(prog.size))  # pre-order numbers
        kinds |= {op.kind for op in prog.ops()}
        behaviors |= {b.behavior for b in prog.setup.bhs}
    assert kinds == set(OpKind)
    assert behaviors == {"plain", "resched", "chain", "nested", "notify", "timer", "toggle",
                         "selfdel"}


def test_dropped_operations_round_trip_through_the_spec() -> None:
    prog = generate(4, 2)
    cut = prog.without({op.uid for op in prog.scripts[-1]} | {0})
    assert cut.size < prog.size and cut.keep is not None
    back, sched = parse_gen_spec(f"{cut.spec};v1:{cut.name}:tso:0")
    assert back == cut and sched.memory == "tso"
    # Dropping a container drops its body: no kept operation is orphaned.
    kept = {op.uid for op in cut.ops()}
    assert kept == cut.keep


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("gen:seed=1", "malformed generated-program spec"),
        ("gen:seed=1,index=2,keep=3-1;v1:gen1.s1.i2:sc:0", "bad range"),
        ("gen:seed=1,index=2;v1:gen1.s1.i3:sc:0", "the spec generates 'gen1.s1.i2'"),
        ("gen:seed=1,index=2;v1:gen0.s1.i2:sc:0", "this version of the generator"),
        ("gen:seed=1,index=2;v1:gen1.s1.i2:arm:0", "bad memory model"),
    ],
)
def test_bad_gen_specs_exit_2_with_one_line(spec: str, needle: str) -> None:
    with pytest.raises(InvalidScheduleError):
        parse_gen_spec(spec)
    r = CliRunner().invoke(main, ["replay", spec])
    assert r.exit_code == 2 and needle in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1


# -- the correct impl -----------------------------------------------------------------------
def test_generated_programs_run_on_real_threads_without_misuse() -> None:
    for i in range(5):
        rep = run_real(generate(11, i), wait=10.0)
        assert rep.ok, rep.describe()


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs"])
def test_the_correct_impl_passes_under_every_memory_model(strategy: str) -> None:
    budget = GenBudget(programs=6, schedules=2, seconds=UNBOUNDED)
    r = search_generated(21, budget, strategies=(strategy,), do_shrink=False)
    assert r.verdict == "pass", r.summary()
    assert r.programs == 6 and r.inconclusive_runs == 0
    from aioctx_verify.stress.explore import MEMORIES

    n = len(MEMORIES)  # sc, tso, pso, c11
    assert r.runs <= 6 * n * 2 and r.runs >= 6 * n  # work-bounded (DFS may exhaust a program)


# -- a seeded bug ---------------------------------------------------------------------------
@pytest.fixture
def found() -> GenFailure:
    """schedule-takes-lock (qemu_bh_schedule takes the context lock) found from seed 0."""
    with applied(BUG):
        r = search_generated(0, GenBudget(programs=12, schedules=2, seconds=UNBOUNDED,
                                          shrink_seconds=20.0))
    assert r.verdict == "fail" and r.failure is not None, r.summary()
    return r.failure


def test_a_seeded_bug_is_found_and_its_line_reproduces_it(found: GenFailure) -> None:
    assert found.prop == "P2", found.report()
    report = found.report()
    lines = LINE.findall(report)
    assert lines == [found.replay_command()]
    line = found.replay_command(BUG)
    assert line.startswith(f"aioctx-verify replay --mutant {BUG} 'gen:seed=0,index=")
    code, out = run_line(line)
    assert code == 1, out
    assert re.search(r"^property: P2$", out, re.M), out
    assert found.program is not None and found.program.listing() in out
    # The mutant is what fails it: without it the run passes or cannot follow the schedule.
    code, out = run_line(line.replace(f"--mutant {BUG} ", ""))
    assert code != 1, out


def test_shrinking_reduces_the_program(found: GenFailure) -> None:
    assert found.program is not None
    assert found.program.size < found.original_size, found.report()
    assert found.program.threads <= found.original_threads
    with applied(BUG):
        again = replay_generated(found.spec)
    assert again.outcome.verdict == "fail" and again.prop == "P2"
    assert again.program == found.program


def test_the_campaign_step_prints_a_line_that_reproduces() -> None:
    """A campaign checks impl as it is: with a mutant applied around it, the step's
    counterexample replays with that mutant applied around the replay."""
    plan = plan_campaign(30, checkers=("generated",))
    with applied(CAMPAIGN_BUG):
        result = run_campaign(plan)
    fails = [v for v in result.verdicts if v.checker == "generated" and v.verdict == "fail"]
    assert fails, result.verdicts
    cx = [c for c in result.counterexamples if c.checker == "generated"]
    assert cx and cx[0].replay_command is not None
    assert cx[0].replay_command.startswith("aioctx-verify replay 'gen:seed=0,index=")
    with applied(CAMPAIGN_BUG):
        code, out = run_line(cx[0].replay_command)
    assert code == 1 and f"property: {cx[0].property}" in out, out
