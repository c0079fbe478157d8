"""The layers: which part of aioctx_verify may import which.

Read from the installed package's source with :mod:`ast` (no module of it is executed:
``importlib.util.find_spec`` locates each folder).  Every ``import`` counts, also one inside
a function or under ``if TYPE_CHECKING:``; relative imports are resolved.  The rules:

* the leaf modules :mod:`aioctx_verify.vocab`, :mod:`aioctx_verify.files` and
  :mod:`aioctx_verify.engine` (campaign shards, in this process or on Dask) import nothing
  of the project;
* each layer imports only the layers :data:`MATRIX` allows: impl, model and reports only
  the vocabulary and the file writer, properties also the model, stress nothing above it
  (reports, the command line);
* a stress room's private modules (``aioctx_verify.stress.<room>._x``) are imported only
  from inside that room: everyone else, the command line included, goes through the
  room's ``__init__``.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

ROOT = "aioctx_verify"
STRESS = f"{ROOT}.stress"

#: Who may import whom: ``x`` allowed, ``-`` forbidden, ``.`` the layer itself (always
#: allowed).  ``cli`` is the root folder's other modules (the command line and campaign).
MATRIX = """
importer     vocab  files  engine  impl  model  properties  reports  stress  cli
vocab          .      -      -      -      -        -          -        -     -
files          -      .      -      -      -        -          -        -     -
engine         -      -      .      -      -        -          -        -     -
impl           x      x      -      .      -        -          -        -     -
model          x      x      -      -      .        -          -        -     -
properties     x      x      -      -      x        .          -        -     -
reports        x      x      -      -      -        -          .        -     -
stress         x      x      x      x      x        x          -        .     -
cli            x      x      x      x      x        x          x        x     .
"""


def _parse(matrix: str) -> dict[str, frozenset[str]]:
    header, *rows = (line.split() for line in matrix.strip().splitlines())
    cols = header[1:]
    out: dict[str, frozenset[str]] = {}
    for importer, *cells in rows:
        assert len(cells) == len(cols) and cells[cols.index(importer)] == ".", importer
        out[importer] = frozenset(c for c, v in zip(cols, cells, strict=True) if v == "x")
    assert sorted(out) == sorted(cols)
    return out


#: Layer -> the other layers it may import.
ALLOWED: Mapping[str, frozenset[str]] = _parse(MATRIX)


@dataclass(frozen=True, slots=True)
class Edge:
    """One import: ``importer`` (a module) names ``target`` (a module of the project)."""

    importer: str
    target: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def installed_packages() -> dict[str, pathlib.Path]:
    """The installed package's folders, by dotted name (setuptools maps them by package-dir)."""
    out: dict[str, pathlib.Path] = {}
    for sub in ("", ".impl", ".model", ".properties", ".reports", ".stress"):
        spec = importlib.util.find_spec(ROOT + sub)
        assert spec is not None and spec.submodule_search_locations, ROOT + sub
        out[ROOT + sub] = pathlib.Path(next(iter(spec.submodule_search_locations)))
    return out


def _modules(packages: Mapping[str, pathlib.Path]) -> dict[str, pathlib.Path]:
    """Every module file, by dotted name.  The root folder holds modules only; the others
    are walked (stress has one subpackage per room)."""
    out: dict[str, pathlib.Path] = {}
    for name, folder in packages.items():
        files = folder.glob("*.py") if name == ROOT else folder.rglob("*.py")
        for f in sorted(files):
            parts = [name, *f.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


def _imported(node: ast.AST, module: str, is_pkg: bool, known: set[str]) -> Iterator[str]:
    """The project modules an import statement names (``from p import m`` names p.m when m
    is a module, else p)."""
    if isinstance(node, ast.Import):
        for a in node.names:
            yield a.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_pkg else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            mod = ".".join([*base, node.module] if node.module else base)
        else:
            mod = node.module or ""
        for a in node.names:
            sub = f"{mod}.{a.name}"
            yield sub if sub in known else mod


def import_edges(packages: Mapping[str, pathlib.Path]) -> list[Edge]:
    """Every import of a project module by a project module, in file and line order."""
    mods = _modules(packages)
    known = set(mods)
    edges: set[Edge] = set()
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            for target in _imported(node, name, is_pkg, known):
                if target == ROOT or target.startswith(ROOT + "."):
                    edges.add(Edge(name, target, str(path), getattr(node, "lineno", 0)))
    return sorted(edges, key=lambda e: (e.path, e.line, e.target))


def layer(module: str) -> str:
    """``vocab``, ``files``, ``engine``, ``impl``, ``model``, ``properties``, ``reports``,
    ``stress`` or ``cli`` (the root folder's other modules: the command line)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ALLOWED and parts[1] != "cli":
        return parts[1]
    return "cli"


def _room(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if module.startswith(STRESS + ".") else None


def violations(packages: Mapping[str, pathlib.Path]) -> list[str]:
    """One sentence per import that breaks a rule of the module docstring."""
    out: list[str] = []
    for e in import_edges(packages):
        src, dst = layer(e.importer), layer(e.target)
        if src != dst and dst not in ALLOWED[src]:
            may = ", ".join(sorted(ALLOWED[src])) or "nothing of the project"
            out.append(
                f"{e.importer} ({e.where}) imports {e.target}: layer {src} may import only "
                f"{may}; move what it needs into aioctx_verify.vocab or pass it in from above"
            )
        room = _room(e.target)
        parts = e.target.split(".")
        if room and len(parts) > 3 and parts[3].startswith("_") and _room(e.importer) != room:
            out.append(
                f"{e.importer} ({e.where}) imports {e.target}, a private module of the room "
                f"{room}; import it from {room} (re-export it in the room's __init__)"
            )
    return out


# -- the installed tree ------------------------------------------------------------------
def test_the_installed_package_keeps_its_layers() -> None:
    assert violations(installed_packages()) == []


def test_the_scan_sees_the_whole_tree() -> None:
    """Not vacuous: every layer is found, and the edges the rules allow are really there."""
    edges = import_edges(installed_packages())
    layers = {(layer(e.importer), layer(e.target)) for e in edges}
    for pair in [
        ("impl", "vocab"),
        ("model", "vocab"),
        ("properties", "vocab"),
        ("properties", "model"),
        ("reports", "vocab"),
        ("reports", "files"),
        ("stress", "impl"),
        ("stress", "engine"),
        ("cli", "engine"),
        ("cli", "reports"),
        ("cli", "stress"),
    ]:
        assert pair in layers, pair
    # Relative imports are resolved: impl's own modules import each other.
    assert any(e.importer == f"{ROOT}.impl" and e.target == f"{ROOT}.impl._context" for e in edges)
    # Rooms are imported through their __init__ (a subpackage, not a name of stress).
    assert any(layer(e.importer) == "cli" and _room(e.target) == e.target for e in edges)
    assert len({e.importer for e in edges}) >= 40


# -- the checker itself, on synthetic trees ---------------------------------------------
def _tree(tmp_path: pathlib.Path, files: Mapping[str, str]) -> dict[str, pathlib.Path]:
    """A package laid out like the real one (root folder + one folder per layer)."""
    folders = {
        ROOT: tmp_path / "root",
        **{f"{ROOT}.{p}": tmp_path / p for p in ("impl", "model", "properties", "reports")},
        STRESS: tmp_path / "stress",
    }
    base = {
        "root/__init__.py": "",
        "root/vocab.py": "from typing import NewType\n",
        "root/files.py": "import os\n",
        "root/cli.py": "from aioctx_verify.stress import explore\nfrom . import files\n",
        "impl/__init__.py": "from ._context import AioContext\n",
        "impl/_context.py": "from aioctx_verify.vocab import TraceEvent\n",
        "model/__init__.py": "from ._state import State\n",
        "model/_state.py": "from ..vocab import ThreadId\n",
        "properties/__init__.py": "",
        "properties/_p1.py": "from aioctx_verify.model import invariants\n",
        "reports/__init__.py": "",
        "reports/_write.py": "from aioctx_verify.files import atomic_write_text\n",
        "stress/__init__.py": "from . import explore\n",
        "stress/explore/__init__.py": "from ._explore import explore\n",
        "stress/explore/_explore.py": "from aioctx_verify.impl import AioContext\n",
        "stress/real/__init__.py": "from ..explore import explore\n",
    }
    for rel, text in {**base, **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folders


def test_a_clean_synthetic_tree_passes(tmp_path: pathlib.Path) -> None:
    assert violations(_tree(tmp_path, {})) == []


def test_the_checker_reports_exactly_the_forbidden_edge(tmp_path: pathlib.Path) -> None:
    bad = "from ..vocab import ThreadId\nfrom aioctx_verify.stress import explore\n"
    tree = _tree(tmp_path, {"model/_state.py": bad})
    assert violations(tree) == [
        f"aioctx_verify.model._state ({tmp_path / 'model' / '_state.py'}:2) imports "
        "aioctx_verify.stress.explore: layer model may import only files, vocab; move what "
        "it needs into aioctx_verify.vocab or pass it in from above"
    ]


@pytest.mark.parametrize(
    ("rel", "text", "importer", "target", "rule"),
    [
        # a relative import is resolved before it is judged
        ("properties/_p1.py", "from ..impl import _context\n", "aioctx_verify.properties._p1",
         "aioctx_verify.impl._context", "layer properties may import only files, model, vocab"),
        # a lazy import inside a function counts
        ("reports/_write.py", "def f():\n    from aioctx_verify.stress import Failure\n",
         "aioctx_verify.reports._write", "aioctx_verify.stress",
         "layer reports may import only files, vocab"),
        ("root/vocab.py", "from aioctx_verify.impl import AioContext\n", "aioctx_verify.vocab",
         "aioctx_verify.impl", "layer vocab may import only nothing of the project"),
        ("impl/_context.py", "import aioctx_verify.model\n", "aioctx_verify.impl._context",
         "aioctx_verify.model", "layer impl may import only files, vocab"),
        # a room's private module, from the command line or from another room
        ("root/cli.py", "from aioctx_verify.stress.explore._explore import explore\n",
         "aioctx_verify.cli", "aioctx_verify.stress.explore._explore",
         "a private module of the room aioctx_verify.stress.explore"),
        ("stress/real/__init__.py", "from ..explore._explore import explore\n",
         "aioctx_verify.stress.real", "aioctx_verify.stress.explore._explore",
         "a private module of the room aioctx_verify.stress.explore"),
    ],
)
def test_each_rule_reports_its_edge(
    tmp_path: pathlib.Path, rel: str, text: str, importer: str, target: str, rule: str
) -> None:
    got = violations(_tree(tmp_path, {rel: text}))
    assert len(got) == 1, got
    assert got[0].startswith(f"{importer} ({tmp_path / rel}:") and f" imports {target}" in got[0]
    assert rule in got[0]
