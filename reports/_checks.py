"""Field checks for the result records: each raises InvalidResultError naming the field."""

from __future__ import annotations

import math

from ._errors import InvalidResultError

__all__ = [
    "fail",
    "finite",
    "is_finite",
    "nonneg_float",
    "nonneg_int",
    "one_of",
    "opt_int",
    "short_repr",
    "string",
    "tuple_of",
]


def short_repr(v: object) -> str:
    try:
        text = repr(v)
    except ValueError:  # an int too long to print
        return "a very large number"
    return text if len(text) <= 40 else text[:37] + "..."


def fail(cls: str, name: str, rule: str) -> InvalidResultError:
    return InvalidResultError(f"{cls}.{name} {rule}")


def nonneg_int(cls: str, name: str, v: object, *, optional: bool = False) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise fail(cls, name, f"must be a non-negative int, not {short_repr(v)}")


def opt_int(cls: str, name: str, v: object) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
        raise fail(cls, name, f"must be an int or None, not {short_repr(v)}")


def is_finite(v: object) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond float range
        return False


def nonneg_float(cls: str, name: str, v: object, *, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not is_finite(v) or v < 0:  # type: ignore[operator]
        raise fail(cls, name, f"must be a finite number >= 0, not {short_repr(v)}")


def finite(cls: str, name: str, v: object) -> None:
    if v is not None and not is_finite(v):
        raise fail(cls, name, f"must be a finite number or None, not {short_repr(v)}")


def one_of(cls: str, name: str, v: object, allowed: tuple[str, ...]) -> None:
    if v not in allowed:
        raise fail(cls, name, f"must be one of {', '.join(allowed)}, not {short_repr(v)}")


def string(cls: str, name: str, v: object, *, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not isinstance(v, str):
        raise fail(cls, name, f"must be a str, not {type(v).__name__}")


def tuple_of(cls: str, name: str, v: object, item: type) -> None:
    if not isinstance(v, tuple) or not all(isinstance(x, item) for x in v):
        raise fail(cls, name, f"must be a tuple of {item.__name__}")
