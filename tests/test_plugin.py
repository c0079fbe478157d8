"""The pytest plugin (``aioctx_verify.pytest_plugin``, entry point ``pytest11``): a user's
own event-loop code explored under the controlled scheduler, stressed on real threads,
failures replayed from the printed command.  Run with pytester, as a user's suite would be.

The example is a user's request ring built on BHs (``plugin_example/ring_example.py``): a
vCPU thread publishes requests and schedules the consumer BH of an IOThread unless it is on
its way.  With its consumer's ``smp_mb()`` it is correct; without it, under TSO, a request is
lost (the store of ``notified = false`` passes the load of ``head``).
"""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(300)

EXAMPLE = (Path(__file__).parent / "plugin_example" / "ring_example.py").read_text()


def _lines(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines)


def _field(out: str, name: str) -> str:
    line = next(x for x in out.splitlines() if x.startswith(f"{name}:"))
    return line.split(":", 1)[1].strip()


@pytest.fixture
def ring(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_ring=EXAMPLE)
    return pytester


def test_the_plugin_is_installed_with_the_package(pytester: pytest.Pytester) -> None:
    r = pytester.runpytest("--markers")
    out = _lines(r)
    assert "@pytest.mark.explore(" in out and "@pytest.mark.stress(" in out
    r = pytester.runpytest("--help")
    assert "--aioctx-replay=SCHEDULE" in _lines(r)


def test_a_correct_body_passes_every_schedule(ring: pytest.Pytester) -> None:
    r = ring.runpytest("-k", "True", "--junitxml=out.xml")
    r.assert_outcomes(passed=1, deselected=1)
    props = _props(ring.path / "out.xml", "test_every_request_is_consumed[True]")
    assert props["aioctx_explored"] == "300 schedules (pct, memory tso, seed 0)"


def test_a_failing_body_prints_its_shrunk_schedule_listing_property_and_replay(
    ring: pytest.Pytester,
) -> None:
    r = ring.runpytest("-k", "False")
    r.assert_outcomes(failed=1, deselected=1)
    out = _lines(r)
    assert "aioctx explore: pct, memory tso, seed 0: run " in out
    assert "raised AssertionError: assert [1] == [1, 2]" in out
    schedule = _field(out, "schedule")
    assert schedule.startswith("v1:test_every_request_is_consumed-False-:tso:")
    assert "preemption(s)" in out and "(found with " in out
    # the per-thread listing: Thread n | file:line (function) | operation
    assert "Thread 1 (io)" in out and "Thread 2 (vcpu)" in out and "| store head" in out
    command = _field(out, "replay")
    assert command == (
        "pytest 'test_ring.py::test_every_request_is_consumed[False]' "
        f"--aioctx-replay '{schedule}'"
    )
    # The printed line alone reproduces it, exactly (same failure, same schedule).
    argv = shlex.split(command)[1:]
    again = ring.runpytest(*argv)
    again.assert_outcomes(failed=1)
    rout = _lines(again)
    assert f"aioctx replay of {schedule}" in rout
    assert "raised AssertionError: assert [1] == [1, 2]" in rout
    # The same schedule on the correct body (another test) is not this test's: skipped.
    other = ring.runpytest("-k", "True", "--aioctx-replay", schedule)
    other.assert_outcomes(skipped=1, deselected=1)


def test_exploration_is_the_same_under_xdist(ring: pytest.Pytester) -> None:
    alone = ring.runpytest()
    alone.assert_outcomes(passed=1, failed=1)
    spread = ring.runpytest("-n", "2")
    spread.assert_outcomes(passed=1, failed=1)
    assert _field(_lines(spread), "schedule") == _field(_lines(alone), "schedule")


def test_a_failure_writes_its_schedule_into_junit_xml(ring: pytest.Pytester) -> None:
    r = ring.runpytest("-k", "False", "--junitxml=out.xml")
    r.assert_outcomes(failed=1, deselected=1)
    props = _props(ring.path / "out.xml", "test_every_request_is_consumed[False]")
    out = _lines(r)
    assert props["aioctx_schedule"] == _field(out, "schedule")
    assert props["aioctx_replay"] == _field(out, "replay")
    assert props["aioctx_seed"] == "0" and props["aioctx_memory"] == "tso"
    assert props["aioctx_strategy"] == "pct"


def test_command_line_options_override_the_marker(ring: pytest.Pytester) -> None:
    r = ring.runpytest("-k", "False", "--aioctx-memory", "sc", "--aioctx-runs", "40",
                       "--aioctx-strategy", "random", "--aioctx-seed", "3",
                       "--junitxml=out.xml")
    # Under sequential consistency the missing barrier loses nothing: no schedule fails.
    r.assert_outcomes(passed=1, deselected=1)
    props = _props(ring.path / "out.xml", "test_every_request_is_consumed[False]")
    assert props["aioctx_explored"] == "40 schedules (random, memory sc, seed 3)"


def test_a_test_that_only_asks_for_the_fixture_is_explored_with_the_defaults(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_one_bh(aioctx):
            ctx = aioctx.context("c")
            ran = []
            ctx.bh_new(lambda _o: ran.append(aioctx.run_index)).schedule()
            ctx.aio_poll(False)
            assert ran == [aioctx.run_index] and aioctx.mode == "explore"
        """
    )
    r = pytester.runpytest("--junitxml=out.xml")
    r.assert_outcomes(passed=1)
    props = _props(pytester.path / "out.xml", "test_one_bh")
    assert props["aioctx_explored"] == "100 schedules (pct, memory sc, seed 0)"


def test_dfs_exhausts_a_small_body_and_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.explore(strategy="dfs", runs=10_000, max_preemptions=1)
        def test_two_threads_one_bh(aioctx):
            ctx = aioctx.context("c")
            ran = []
            bh = ctx.bh_new(lambda _o: ran.append(1))
            t = aioctx.spawn(bh.schedule, "scheduler")
            t.join()
            ctx.aio_poll(False)
            assert ran == [1]
        """
    )
    r = pytester.runpytest("--junitxml=out.xml")
    r.assert_outcomes(passed=1)
    props = _props(pytester.path / "out.xml", "test_two_threads_one_bh")
    assert props["aioctx_exhausted"] == "every schedule with <= 1 preemptions"
    n = int(props["aioctx_explored"].split()[0])
    assert 1 < n < 10_000


def test_a_deadlock_of_the_users_lock_order_names_liveness(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.explore(strategy="dfs", runs=1000, max_preemptions=1)
        def test_lock_order(aioctx):
            a, b = aioctx.context("a"), aioctx.context("b")

            def other():
                with b, a:
                    pass

            t = aioctx.spawn(other, "other")
            with a, b:
                pass
            t.join()
        """
    )
    r = pytester.runpytest()
    r.assert_outcomes(failed=1)
    out = _lines(r)
    assert "property: LIVE (deadlock)" in out, out
    assert "shrunk to 1 preemption(s)" in out


def test_a_hung_exploration_reports_every_controlled_thread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        import pytest

        @pytest.mark.explore(runs=5)
        def test_blocks_outside_the_platform(aioctx):
            ctx = aioctx.context("c")
            aioctx.spawn(lambda: ctx.aio_notify(), "helper")
            threading.Event().wait(120)  # a real wait: the scheduler cannot see it
        """
    )
    # 20 s: the plugin ends the run at 18 s, leaving pytest-timeout 2 s, ample on a loaded
    # machine, to see the test already failed.
    r = pytester.runpytest_subprocess("--timeout=20", "--junitxml=out.xml")
    r.assert_outcomes(failed=1)
    out = _lines(r)
    assert "hung: it did not end within 18.0 s (90% of the test's timeout)" in out
    assert "controlled threads at the hang:" in out
    main = next(x for x in r.outlines if x.strip().startswith("Thread 0 (main) | "))
    assert main.endswith(".py:8 (test_blocks_outside_the_platform)"), main  # its Event.wait
    assert "Timeout >" not in out  # reported by the plugin, not as pytest-timeout's bare one


def test_stress_runs_the_body_on_real_threads(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ring=EXAMPLE.replace(
            '@pytest.mark.explore(strategy="pct", runs=300, memory="tso")',
            "@pytest.mark.stress(duration=0.3, noise=True)",
        )
        + """

@pytest.mark.stress(duration=0.3)
def test_a_body_that_always_fails(aioctx):
    it = aioctx.iothread("io")
    assert it.ctx is None, "the user's own check"
"""
    )
    r = pytester.runpytest("-k", "True or always", "--junitxml=out.xml")
    r.assert_outcomes(passed=1, failed=1, deselected=1)
    out = _lines(r)
    assert "aioctx stress: trial 0 of 1 failed" in out and "the user's own check" in out
    props = _props(pytester.path / "out.xml", "test_every_request_is_consumed[True]")
    trials = int(props["aioctx_stressed"].split()[0])
    assert trials >= 1


@pytest.mark.parametrize(
    ("source", "args", "needle"),
    [
        ("@pytest.mark.explore(strategy='bogus')", (), "explore strategy 'bogus' is not one"),
        ("@pytest.mark.explore(runs=0)", (), "explore runs=0 is not a valid count"),
        ("@pytest.mark.explore(rnus=3)", (), "unknown @pytest.mark.explore argument(s) ['rnus']"),
        ("@pytest.mark.explore(monitors='yes')", (), "explore monitors='yes' is not a bool"),
        ("@pytest.mark.explore()", ("--aioctx-replay", "nonsense"),
         "--aioctx-replay: malformed schedule string 'nonsense'"),
        ("@pytest.mark.stress(secs=1)", (), "@pytest.mark.stress takes keyword arguments"),
    ],
)
def test_bad_markers_and_options_name_the_problem(
    pytester: pytest.Pytester, source: str, args: tuple[str, ...], needle: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        {source}
        def test_body(aioctx):
            aioctx.context("c")
        """
    )
    r = pytester.runpytest(*args)
    assert needle in "\n".join(r.outlines + r.errlines), r.outlines + r.errlines
    assert r.ret != 0


def test_the_fixture_outside_a_run_says_how_to_use_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def ctx(aioctx):
            return aioctx.context("too-early")

        def test_uses_it(ctx):
            pass
        """
    )
    r = pytester.runpytest()
    r.assert_outcomes(errors=1)
    assert "the aioctx fixture is live only inside a test body run by the plugin" in _lines(r)


def _props(path: Path, name: str) -> dict[str, str]:
    root = ET.parse(path).getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == name)
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
