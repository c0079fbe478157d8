"""Exceptions: one root, subclasses named by whose mistake it is.

Every message is one sentence that names the object and the rule broken, and the remedy
when there is one (trio's style: "can't release a Lock you don't own").  The root,
:class:`AioCtxError`, lives in :mod:`aioctx_verify.vocab` (re-exported here) so that the
other layers (scheduler, properties, reports) derive their own errors from it without
importing impl.
PYTEST_DONT_REWRITE (why: impl/__init__.py)."""

from __future__ import annotations

from aioctx_verify.vocab import AioCtxError

__all__ = [
    "AioCtxError",
    "BHDeletedError",
    "CallbackError",
    "ContextClosedError",
    "ContextInUseError",
    "ContextNotHeldError",
    "InvalidCallbackError",
    "InvalidFdError",
    "IOThreadStateError",
    "LockNotHeldError",
    "NotifierClosedError",
    "NotOwnerError",
    "PoolShutdownError",
    "TimerFreedError",
    "UsageError",
]


class UsageError(AioCtxError):
    """The caller broke one of the API's rules (QEMU would assert or corrupt memory)."""


class NotOwnerError(UsageError):
    """A thread used a context (or its lock) that another thread owns."""


class ContextNotHeldError(NotOwnerError):
    """A thread other than the context's home thread used it without holding it (P3)."""


class LockNotHeldError(UsageError):
    """Release of a context lock that nobody holds."""


class BHDeletedError(UsageError):
    """Schedule, cancel or delete of a bottom half that was already deleted."""


class TimerFreedError(UsageError):
    """Use of a timer after ``timer_free``."""


class InvalidCallbackError(UsageError, TypeError):
    """A callback that is not callable, refused at registration."""


class InvalidFdError(UsageError, ValueError):
    """A file descriptor that is not open (at registration or when polled)."""


class NotifierClosedError(UsageError):
    """Use of an event notifier after ``event_notifier_cleanup``."""


class ContextInUseError(UsageError):
    """Dropping the last reference of a context that an IOThread still runs."""


class ContextClosedError(UsageError):
    """Use of a context after its last reference was dropped."""


class PoolShutdownError(UsageError):
    """Submission to a thread pool that was shut down."""


class IOThreadStateError(UsageError):
    """An IOThread operation in the wrong life-cycle state (e.g. join before start)."""


class CallbackError(AioCtxError):
    """A user callback (BH, fd handler, timer, completion) raised.

    The context stays consistent: the lock is not leaked, the failing BH is not re-run, and
    BHs that were scheduled but not yet reached stay scheduled for the next iteration.
    The original exception is ``__cause__``.

    Attributes:
        callback: the callback's qualified name.
        kind: ``bh``, ``fd_read``, ``fd_write``, ``timer`` or ``completion``.
    """

    def __init__(self, kind: str, callback: str, exc: BaseException) -> None:
        super().__init__(
            f"{kind} callback {callback} raised {type(exc).__name__}: {exc}; "
            "the context is consistent and can be polled again"
        )
        self.kind = kind
        self.callback = callback
        self.exception = exc


def callable_name(cb: object) -> str:
    """A readable name for a callback, for error messages and traces."""
    name = getattr(cb, "__qualname__", None) or getattr(cb, "__name__", None)
    if name is None:
        return repr(cb)
    mod = getattr(cb, "__module__", None)
    return f"{mod}.{name}" if mod and mod != "builtins" else str(name)


def check_callable(cb: object, what: str, *, optional: bool = False) -> None:
    """Raise :class:`InvalidCallbackError` unless ``cb`` is callable (or None if optional)."""
    if cb is None and optional:
        return
    if not callable(cb):
        raise InvalidCallbackError(
            f"{what} must be callable, got {type(cb).__name__} {cb!r}; pass a function"
        )
