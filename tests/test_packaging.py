"""The wheel installs one import package, ``aioctx_verify``, and every folder of the source.

The repository keeps the user's folders at the top level (``impl/``, ``model/``,
``properties/``, ``stress/``, ``reports/``) and maps them into ``aioctx_verify`` with
setuptools' ``package-dir``; the list of packages in ``pyproject.toml`` is explicit, so a new
room (subpackage) that is not added there would silently be missing from the wheel.  This
test builds the wheel from the checkout and holds it against the tree.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Source folder -> the package it becomes.
FOLDERS = {
    "aioctx_verify": "aioctx_verify",
    "impl": "aioctx_verify/impl",
    "model": "aioctx_verify/model",
    "properties": "aioctx_verify/properties",
    "reports": "aioctx_verify/reports",
    "stress": "aioctx_verify/stress",
}


def _source_files() -> set[str]:
    """Every file the wheel must carry, as its path inside the wheel."""
    want: set[str] = set()
    for folder, pkg in FOLDERS.items():
        base = ROOT / folder
        for f in base.rglob("*"):
            if "__pycache__" in f.parts or not f.is_file():
                continue
            if f.suffix in (".py", ".json") or f.name == "py.typed":
                want.add(f"{pkg}/{f.relative_to(base).as_posix()}")
    return want


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("not run from a checkout (no pyproject.toml beside tests/)")
    # Build from a copy: an in-tree build would reuse a stale build/ folder of an earlier one.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (whl,) = out.glob("aioctx_verify-*.whl")
    return zipfile.ZipFile(whl)


def test_the_only_top_level_import_package_is_aioctx_verify(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1, tops
    assert tops - dist_info == {"aioctx_verify"}, sorted(tops)
    (info,) = dist_info
    if f"{info}/top_level.txt" in names:
        assert wheel.read(f"{info}/top_level.txt").decode().split() == ["aioctx_verify"]


def test_every_source_file_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    have = {n for n in wheel.namelist() if not n.split("/", 1)[0].endswith(".dist-info")}
    missing = sorted(_source_files() - have)
    assert not missing, (
        f"{len(missing)} source file(s) missing from the wheel, e.g. {missing[:5]}; "
        "add the new subpackage to [tool.setuptools] packages in pyproject.toml"
    )


def test_the_console_script_names_the_package(wheel: zipfile.ZipFile) -> None:
    (ep,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(ep).decode()
    assert "aioctx-verify = aioctx_verify.cli:main" in text


def _run_python(code: str, *, cwd: pathlib.Path, pythonpath: pathlib.Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath), "PYTHONNOUSERSITE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_wheel_alone_finds_its_data_files(
    wheel: zipfile.ZipFile, tmp_path: pathlib.Path
) -> None:
    """Data files are looked up under the installed name (a lookup under a folder name, such
    as ``reports``, only works where the checkout happens to be on ``sys.path``)."""
    site = tmp_path / "site"
    wheel.extractall(site)
    out = _run_python(
        "from aioctx_verify.reports._schema import load_schema\n"
        "for n in ('result-v1.json', 'history-v1.json'):\n"
        "    print(sorted(load_schema(n))[0])\n",
        cwd=tmp_path,
        pythonpath=site,
    )
    assert len(out.splitlines()) == 2


def test_a_checkout_on_sys_path_imports_as_the_whole_package(tmp_path: pathlib.Path) -> None:
    """``python -m aioctx_verify.cli`` from the root (and pytest-xdist's workers, which put the
    working directory on ``sys.path`` and ``PYTHONPATH``) find the checkout's ``aioctx_verify/``
    folder before any installed copy: its subpackages must then be the checkout's folders."""
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("not run from a checkout (no pyproject.toml beside tests/)")
    out = _run_python(
        "import aioctx_verify.stress.controlled, aioctx_verify.reports._schema as s, "
        "aioctx_verify.vocab\n"
        "s.load_schema('result-v1.json')\n"
        "print(aioctx_verify.stress.controlled.__file__)\n"
        "print(aioctx_verify.vocab.__file__)\n",
        cwd=ROOT,
        pythonpath=ROOT,
    )
    controlled, vocab = out.splitlines()
    assert pathlib.Path(controlled) == ROOT / "stress" / "controlled" / "__init__.py"
    assert pathlib.Path(vocab) == ROOT / "aioctx_verify" / "vocab.py"
