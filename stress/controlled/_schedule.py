"""Schedule strings: a short, printable, versioned text that reproduces a run exactly.

Format (version 1)::

    v1:<program>:<memory>:<tokens>

``tokens`` lists the choice made at every decision that had more than one option, comma
separated: ``3`` runs thread 3, ``F3`` flushes thread 3's oldest buffered store, ``F3.1``
(pso only) flushes the oldest store to the second cell of thread 3's buffer, ``R3.2``
(c11 only) has thread 3's load read the cell's write number 2 (0 = its initial value).  A token
repeated n times is written ``tok*n``.  Example: ``v1:lost_update:sc:0*2,1,2*2``.

Thread numbers are creation order (0 = the program's main thread), so a string does not
depend on thread idents, hash seeds or dict order and is stable across Python 3.10-3.13.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aioctx_verify.impl import AioCtxError

__all__ = ["InvalidScheduleError", "Schedule", "decode_tokens", "encode_tokens"]

VERSION = "v1"
_TOKEN = re.compile(r"^(?:\d+|F\d+(?:\.\d+)?|R\d+\.\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MEMORIES = ("sc", "tso", "pso", "c11")


class InvalidScheduleError(AioCtxError, ValueError):
    """A schedule string that cannot be parsed (or names an unknown program)."""


def encode_tokens(tokens: list[str] | tuple[str, ...]) -> str:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and tokens[j] == tokens[i]:
            j += 1
        n = j - i
        out.append(tokens[i] if n == 1 else f"{tokens[i]}*{n}")
        i = j
    return ",".join(out)


def decode_tokens(text: str) -> list[str]:
    if text == "":
        return []
    tokens: list[str] = []
    for part in text.split(","):
        tok, star, count = part.partition("*")
        if not _TOKEN.match(tok):
            raise InvalidScheduleError(
                f"bad schedule token {part!r}: expected a thread number (e.g. 2), "
                "a flush (F2 or F2.1), a c11 read (R2.1), optionally followed by *count"
            )
        n = 1
        if star:
            if not count.isdigit() or int(count) < 1:
                raise InvalidScheduleError(f"bad repeat count in schedule token {part!r}")
            n = int(count)
            if n > 10_000_000:
                raise InvalidScheduleError(f"repeat count in {part!r} is implausibly large")
        tokens.extend([tok] * n)
    return tokens


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule string."""

    program: str
    memory: str
    tokens: tuple[str, ...]

    def __str__(self) -> str:
        return f"{VERSION}:{self.program}:{self.memory}:{encode_tokens(self.tokens)}"

    @classmethod
    def parse(cls, text: str) -> Schedule:
        text = text.strip()
        parts = text.split(":")
        if len(parts) != 4:
            raise InvalidScheduleError(
                f"malformed schedule string {text[:60]!r}: expected "
                "v1:<program>:<memory>:<tokens>, as printed by a failing run"
            )
        version, program, memory, body = parts
        if version != VERSION:
            raise InvalidScheduleError(
                f"schedule string version {version!r} is not supported; this tool reads {VERSION}"
            )
        if not _NAME.match(program):
            raise InvalidScheduleError(f"bad program name {program!r} in schedule string")
        if memory not in MEMORIES:
            raise InvalidScheduleError(
                f"bad memory model {memory!r} in schedule string; "
                f"expected one of {', '.join(MEMORIES)}"
            )
        return cls(program, memory, tuple(decode_tokens(body)))
