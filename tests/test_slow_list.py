"""The ``slow`` list (tests/slow-tests.txt) that the quick tox environments leave out names
tests that exist, and the marking reaches every parameter of them and nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import SLOW_TESTS_FILE, _mark_slow, slow_tests

ROOT = Path(__file__).resolve().parent.parent


def _defined(path: Path) -> set[str]:
    """``function`` and ``Class::method`` names defined at the top of a test module."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(
                f"{node.name}::{m.name}" for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
            )
        elif isinstance(node, ast.Assign):  # TestX = Machine.TestCase
            names.update(f"{t.id}::runTest" for t in node.targets if isinstance(t, ast.Name))
    return names


def test_every_listed_slow_test_exists() -> None:
    listed = slow_tests()
    assert len(listed) > 10, f"{SLOW_TESTS_FILE} lists almost nothing"
    missing = []
    for entry in sorted(listed):
        file, sep, name = entry.partition("::")
        path = ROOT / file
        if not sep or not path.is_file() or name not in _defined(path):
            missing.append(entry)
    assert not missing, (
        f"{SLOW_TESTS_FILE} names tests that do not exist (renamed or removed?); "
        f"fix or delete these lines: {missing}"
    )


class _Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.markers: list[str] = []

    def add_marker(self, mark: pytest.MarkDecorator) -> None:
        self.markers.append(mark.name)


def test_marking_covers_every_parameter_and_only_listed_tests() -> None:
    entry = sorted(slow_tests())[0]
    items = [_Item(entry), _Item(entry + "[a-b]"), _Item(entry + "_not_listed"),
             _Item(entry.split("::")[0] + "::test_never_listed[x]")]
    _mark_slow(items)  # type: ignore[arg-type]
    assert [it.markers for it in items] == [["slow"], ["slow"], [], []]
