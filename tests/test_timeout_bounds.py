"""The stuck-test bound of the tests that run the Hypothesis profile's examples scales with
the profile (tests/conftest.py): the nightly profile's 5,000 examples are not cut off at the
bound sized for the ci profile's 50."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PLUGIN = '''
def pytest_collection_finish(session):
    for it in session.items:
        m = it.get_closest_marker("timeout")
        print("BOUND", it.nodeid, m.args[0] if m else "ini")
'''


def _bounds(profile: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "bounds_plugin.py").write_text(_PLUGIN)
    env = dict(os.environ, HYPOTHESIS_PROFILE=profile,
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "bounds_plugin",
         "--collect-only", "-q", "tests/test_stateful_single.py", "tests/test_stateful_multi.py",
         "tests/test_false_alarms.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    return {ln.split()[1]: ln.split()[2] for ln in out.splitlines() if ln.startswith("BOUND ")}


@pytest.mark.parametrize(("profile", "want"), [("ci", "ini"), ("nightly", "12000.0")])
def test_profile_tests_get_a_bound_scaled_by_their_examples(
    profile: str, want: str, tmp_path: Path
) -> None:
    b = _bounds(profile, tmp_path)
    assert b["tests/test_stateful_single.py::TestLockstep::runTest"] == want, b
    given = "tests/test_stateful_multi.py::test_correct_impl_passes_every_scenario_and_interleaving"
    assert b[given] == want, b
    # A plain test keeps the ini bound; one with its own bound keeps its own.
    assert b["tests/test_stateful_multi.py::test_listing_is_the_program_in_qemu_names"] == "ini"
    fa = [k for k in b if "test_no_false_alarm_on_the_correct_impl" in k]
    assert fa and all(b[k] not in ("ini", "12000.0") for k in fa), b
