"""Text helpers shared by the renderers: escaping and number formatting."""

from __future__ import annotations

import html
import re

__all__ = ["esc", "fmt_num", "fmt_seconds", "xml_safe"]

# Characters XML 1.0 (and so HTML's parser, which replaces them) cannot hold.
_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with characters XML 1.0 forbids written visibly as ``\\xNN``."""
    return _BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def esc(text: object) -> str:
    """HTML-escaped text (quotes too, so it is safe in attributes)."""
    return html.escape(xml_safe(str(text)), quote=True)


def fmt_num(v: float | None, digits: int = 3) -> str:
    """A figure for people: thousands separated, ``digits`` significant digits, or ``-``."""
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s == 0:
        return "0 s"
    if s < 1:
        return f"{s * 1000:.0f} ms" if s >= 0.001 else f"{s * 1e6:.0f} us"
    if s < 120:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    if m < 120:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"
