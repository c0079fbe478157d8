"""Small inline SVG charts for the HTML report: outcome bars, sparklines, verdict strips.

Inline SVG, not a charting library: the report must be one file that renders offline, and
these three shapes need a few dozen lines.  Every chart carries a ``<title>`` (shown as a
tooltip and read by screen readers) and draws its numbers as text, so nothing depends on
reading a bar's length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._result import Grade
from ._text import esc, fmt_num

__all__ = ["GRADE_COLOURS", "VERDICT_COLOURS", "outcome_bars", "sparkline", "verdict_strip"]

GRADE_COLOURS: dict[Grade, str] = {
    "ACCEPTABLE": "#2e7d32",
    "ACCEPTABLE_INTERESTING": "#1f6fb2",
    "FORBIDDEN": "#c62828",
}
VERDICT_COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "inconclusive": "#ef8f00",
    "skipped": "#9e9e9e",
    None: "#e0e0e0",
}


def outcome_bars(rows: Sequence[tuple[str, int, Grade]], *, title: str, width: int = 560) -> str:
    """Horizontal bars, one per outcome, on a log scale (a 3 beside a 10,000 stays visible)."""
    row_h, label_w, count_w = 24, 190, 80
    bar_w = width - label_w - count_w
    top = max((math.log10(1 + n) for _, n, _ in rows), default=1.0) or 1.0
    height = row_h * len(rows) + 4
    out = [
        f'<svg class="bars" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{esc(title)}</title>",
    ]
    for i, (outcome, n, grade) in enumerate(rows):
        y = i * row_h + 2
        colour = GRADE_COLOURS[grade]
        w = 0.0 if n == 0 else max(2.0, bar_w * math.log10(1 + n) / top)
        label = outcome if len(outcome) <= 26 else outcome[:25] + "\u2026"
        out.append(
            f'<g><title>{esc(outcome)}: {n:,} ({grade})</title>'
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" class="lbl">'
            f"{esc(label)}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 8}" class="track"/>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{colour}"/>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 16}" class="num" fill="{colour}">'
            f"{n:,}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)


def sparkline(
    values: Sequence[float | None],
    *,
    title: str,
    flagged: bool = False,
    width: int = 240,
    height: int = 56,
    floor_zero: bool = True,
) -> str:
    """A line through ``values`` (oldest first; None leaves a gap), the last point dotted."""
    pad = 4
    known = [v for v in values if v is not None]
    colour = "#c62828" if flagged else "#1f6fb2"
    head = (
        f'<svg class="spark" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f"<title>{esc(title)}</title>"
    )
    if not known:
        return head + f'<text x="{pad}" y="{height / 2 + 4}" class="lbl">no data</text></svg>'
    lo = 0.0 if floor_zero else min(known)
    hi = max(known)
    span = (hi - lo) or (abs(hi) or 1.0)
    n = len(values)
    step = (width - 2 * pad) / max(n - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + i * step if n > 1 else width / 2
        y = height - pad - (v - lo) / span * (height - 2 * pad)
        return x, y

    parts: list[str] = [head, f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" '
                        f'y2="{height - pad}" class="axis"/>']
    run: list[str] = []
    for i, v in enumerate(values):
        if v is None:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                             'stroke-width="1.6"/>')
            run = []
            continue
        x, y = xy(i, v)
        run.append(f"{x:.1f},{y:.1f}")
    if len(run) > 1:
        parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                     'stroke-width="1.6"/>')
    for i, v in enumerate(values):
        if v is not None:
            x, y = xy(i, v)
            last = i == n - 1
            r = 3.2 if last else 1.6
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}">'
                f"<title>{esc(fmt_num(v))}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def verdict_strip(
    verdicts: Sequence[str | None], *, title: str, labels: Sequence[str] = (), flagged: bool = False
) -> str:
    """One square per run (oldest first) coloured by verdict; a red frame on a regression."""
    size, gap = 12, 3
    width = len(verdicts) * (size + gap) + gap
    height = size + 2 * gap
    out = [
        f'<svg class="strip" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{esc(title)}</title>",
    ]
    for i, v in enumerate(verdicts):
        x = gap + i * (size + gap)
        tip = f"{labels[i]}: {v or 'not run'}" if i < len(labels) else (v or "not run")
        frame = ""
        if flagged and i == len(verdicts) - 1:
            frame = ' stroke="#000" stroke-width="2"'
        out.append(
            f'<rect x="{x}" y="{gap}" width="{size}" height="{size}" rx="2" '
            f'fill="{VERDICT_COLOURS.get(v, "#e0e0e0")}"{frame}><title>{esc(tip)}</title></rect>'
        )
    out.append("</svg>")
    return "".join(out)
