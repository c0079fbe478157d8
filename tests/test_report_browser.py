"""The HTML report in a real browser: headless Chromium, network disabled.

Skipped when no Chromium is installed (CI installs the Debian package ``chromium``).  Run
alone with ``tox -e browser`` or ``pytest -m browser``.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aioctx_verify.reports import sample_result, write_reports

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# No network at all: the page must render from the file alone.  Any host name resolves
# to nothing and any proxied request goes to a closed port; QUIC, background and update
# traffic are off.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--hide-scrollbars",
)


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip("no headless Chromium installed (the Debian package is 'chromium')")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"  # a fresh profile every run
    return subprocess.run(
        [_browser(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """A failing campaign after four passing ones, so every section has content."""
    history = tmp_path / "history.jsonl"
    start = datetime(2025, 11, 20, 2, 0, tzinfo=timezone.utc)
    for i in range(5):
        r = sample_result(failing=i == 4, started_at=start + timedelta(days=i))
        assert r.coverage is not None
        r = dataclasses.replace(
            r,
            coverage=dataclasses.replace(
                r.coverage, steps_per_second=182_500.0 - (60_000 if i == 4 else 1000 * i)
            ),
        )
        paths = write_reports(r, tmp_path / "out", history)
    assert paths.trends is not None and len(paths.trends.regressions) == 3
    return paths.html


def test_the_report_renders_offline_in_chromium(page: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for needle in (
        '<header class="banner fail" id="summary"><h1>\u2717 P2 fails</h1>',
        '<section id="regressions" class="regressions">',
        '<section id="verdicts">',
        '<div class="lanes" style="grid-template-columns:3.5em repeat(3, minmax(15em, 1fr))">',
        '<div class="step broke" style="grid-row:10;grid-column:3">',
        "aioctx-verify replay 'v1:bh_pingpong:sc:0*2,1*2,0,2*2,1*2'",
        '<svg class="bars"',
        '<section id="kill-matrix">',
        '<section id="coverage">',
        '<svg class="spark"',
        "REGRESSION: passed, now fails",
    ):
        assert needle in html, needle
    # The browser parsed the page as the renderer meant it: the same number of lanes,
    # steps and charts survive the parser.
    assert html.count('class="head"') == 4
    assert html.count('class="step') == 9
    assert html.count("<svg") == 2 + 16 + 2


def test_the_report_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run = _chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,3200", page.as_uri()
    )
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 3200)
    # A blank or unstyled page compresses to almost nothing; this one has colour and text.
    assert len(data) > 100_000, len(data)
