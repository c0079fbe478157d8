"""The protocols of QEMU's ``docs/spin`` models as programs of :mod:`model._notify`'s
language: the fixed protocols and their planted bugs, their properties, and the Spin runs
each (protocol, property) stands for.

Why it exists: the encodings are data over the language, independent of how they are
checked; :func:`model._notify.check_protocol` and the fence audit build them with
:func:`build`.
"""

from __future__ import annotations

from ._notify_lang import (
    TR,
    Assign,
    Atomic,
    Await,
    Branch,
    C,
    Expr,
    Fence,
    Goto,
    Instr,
    NotifyError,
    Program,
    R,
    Store,
    Thread,
    V,
)


# ------------------------------------------------------------------------------------------
# The protocols (our encoding of QEMU's docs/spin models)
# ------------------------------------------------------------------------------------------
def _inc(var: str, d: int, label: str) -> Atomic:
    return Atomic(var, ("+" if d > 0 else "-", V(var), C(1)), label=label)


def _aio_notify(bug: bool, requests: int = 4) -> Program:
    """notify_me (eabc977973): the waiter counts itself in ``notify_me`` (``atomic_add``, a
    full barrier), looks for requests and otherwise sleeps on the event; the notifier posts
    request bit ``1 << i`` (plain store), ``smp_mb()``, and sets the event only when
    ``notify_me`` is non-zero, then waits for the request to be served (synchronous) or not.
    BUG drops the waiter's look at the requests: it always sleeps.  Goal: ``done`` (the bits
    the waiter served) never reaches all of them."""
    final = (1 << requests) - 1
    w: list[Instr | str] = [
        "loop",
        _inc("notify_me", 1, "aio_poll: atomic_add(notify_me) before checking for work"),
    ]
    if not bug:
        w.append(Branch(("!=", V("req"), C(0)), "served"))
    w += [
        Await(("!=", V("event"), C(0)), syscall=True),
        Atomic("event", C(0), syscall=True),
        "served",
        _inc("notify_me", -1, "aio_poll: atomic_sub(notify_me) after waking"),
        Atomic("req", C(0), reg="fetch", label="aio_bh_poll: xchg(req, 0)"),
        Assign("done", ("|", R("done"), R("fetch"))),
        Goto(("loop",)),
    ]
    n: list[Instr | str] = []
    for i in range(requests):
        n += [
            Store("req", ("|", V("req"), C(1 << i))),
            Fence("mb", "aio_notify: smp_mb() before reading notify_me"),
            Branch(("==", V("notify_me"), C(0)), f"skip{i}"),
            Atomic("event", C(1), syscall=True),
            f"skip{i}",
            Goto((f"sync{i}", f"next{i}")),
            f"sync{i}",
            Await(("==", V("req"), C(0))),
            f"next{i}",
        ]
    return Program(
        "aio_notify" + ("/BUG" if bug else ""),
        ("notify_me", "event", "req"),
        (Thread.assemble("waiter", w, ("done", "fetch")), Thread.assemble("notifier", n)),
        goals=(("!=", TR("waiter", "done"), C(final)),),
        fair=False,
        width=max(2, requests),
    )


def _poller(name: str, temporary: bool, clear: list[Instr | str]) -> Thread:
    items: list[Instr | str] = ["loop"]
    if temporary:
        items.append(Goto(("body", "end")))
    items += [
        "body",
        _inc("notify_me", 1, "aio_poll: atomic_add(notify_me) before checking for work"),
        Branch(("!=", V("req"), C(0)), "after"),
        Await(("!=", V("event"), C(0)), syscall=True),
        "after",
        _inc("notify_me", -1, "aio_poll: atomic_sub(notify_me) after waking"),
        *clear,
        Goto(("loop",)),
    ]
    return Thread.assemble(name, items)


def _notifier(check_req: bool, notify: list[Instr | str]) -> Thread:
    items: list[Instr | str] = [
        "loop", Goto(("post", "quit")),
        "post",
        Store("req", C(1)),
        Fence("mb", "aio_notify: smp_mb() before reading notify_me"),
    ]
    if check_req:
        items.append(Branch(("==", V("notify_me"), C(0)), "loop"))
    items += [*notify, Goto(("loop",)), "quit", Assign("done", C(1))]
    return Thread.assemble("notifier", items)


def _goals(check_req: bool) -> tuple[Expr, ...]:
    if check_req:
        return (("!=", V("req"), C(0)),)
    return (("and", ("==", V("event"), C(0)), ("==", TR("notifier", "done"), C(0))),
            ("!=", V("event"), C(0)))


def _aio_notify_bug(bug: bool, check_req: bool) -> Program:
    """The placement of ``event_notifier_test_and_clear`` (21a03d17): two pollers (one may
    leave) and a notifier posting ``req`` and setting the event.  Fixed: a poller clears the
    event, then the request; BUG: the request first, so a poller can swallow the event set
    for a later request that another poller sleeps on."""
    ev = Atomic("event", C(0), syscall=True)
    rq = Store("req", C(0))
    clear: list[Instr | str] = [rq, ev] if bug else [ev, rq]
    return Program(
        "aio_notify_bug" + ("/BUG" if bug else ""),
        ("notify_me", "event", "req"),
        (_notifier(check_req, [Atomic("event", C(1), syscall=True)]),
         _poller("waiter", False, clear), _poller("temporary_waiter", True, clear)),
        goals=_goals(check_req),
        width=2,
    )


def _aio_notify_accept(bug: int, check_req: bool) -> Program:
    """``ctx->notified`` and ``aio_notify_accept`` (05e514b1): the notifier sets the event,
    then ``notified`` (``atomic_mb_set``); a poller ``xchg``es ``notified`` to 0 and clears
    the event only if it was set.  BUG1 sets ``notified`` before the event; BUG2 skips the
    event write when ``notified`` is already set."""
    set_ev = Atomic("event", C(1), syscall=True)
    set_nf = Atomic("notified", C(1), label="aio_notify: atomic_mb_set(notified, true)")
    if bug == 1:
        notify: list[Instr | str] = [set_nf, set_ev]
    elif bug == 2:
        notify = [Branch(("!=", V("notified"), C(0)), "noset"), set_ev, "noset", set_nf]
    else:
        notify = [set_ev, set_nf]
    clear: list[Instr | str] = [
        Atomic("notified", C(0), reg="old", label="aio_notify_accept: xchg(notified, false)"),
        Branch(("==", R("old"), C(0)), "keep"),
        Atomic("event", C(0), syscall=True),
        "keep",
        Store("req", C(0)),
    ]
    return Program(
        "aio_notify_accept" + (f"/BUG{bug}" if bug else ""),
        ("notify_me", "notified", "event", "req"),
        (_notifier(check_req, notify), _poller("waiter", False, clear),
         _poller("temporary_waiter", True, clear)),
        goals=_goals(check_req),
        width=2,
    )


#: Protocol variants; ``/BUG`` (aio_notify), ``aio_notify_bug/BUG`` (21a03d17) and
#: ``aio_notify_accept/BUG1``, ``/BUG2`` are the planted bugs of QEMU's models.
PROTOCOLS: tuple[str, ...] = (
    "aio_notify", "aio_notify/BUG", "aio_notify_bug", "aio_notify_bug/BUG",
    "aio_notify_accept", "aio_notify_accept/BUG1", "aio_notify_accept/BUG2",
)
#: Properties per protocol family: Spin's default never claim, and ``req_cleared``
#: (``-DCHECK_REQ``: "req is eventually false", with the ``notify_me`` optimisation on).
PROPERTIES: dict[str, tuple[str, ...]] = {
    "aio_notify": ("requests_served",),
    "aio_notify_bug": ("event_toggles", "req_cleared"),
    "aio_notify_accept": ("event_toggles", "req_cleared"),
}

#: (protocol, property) -> (promela file, spin -D defines, pan flags, Spin's expected verdict)
SPIN_MODELS: dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    ("aio_notify", "requests_served"): ("aio_notify.promela", (), ("-a",), "holds"),
    ("aio_notify/BUG", "requests_served"): ("aio_notify.promela", ("BUG",), ("-a",), "refuted"),
}
for _f, _vs in (("aio_notify_bug", ("", "BUG")), ("aio_notify_accept", ("", "BUG1", "BUG2"))):
    for _v in _vs:
        for _prop in ("event_toggles", "req_cleared"):
            _d = tuple(x for x in (_v, "CHECK_REQ" if _prop == "req_cleared" else "") if x)
            SPIN_MODELS[(_f + (f"/{_v}" if _v else ""), _prop)] = (
                f"{_f}.promela", _d, ("-a", "-f"), "")


def _family(protocol: str) -> str:
    return protocol.split("/")[0]


def build(protocol: str, prop: str | None = None) -> Program:
    """The program for ``protocol`` checked for ``prop`` (default: Spin's default claim)."""
    if protocol not in PROTOCOLS:
        raise NotifyError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    fam = _family(protocol)
    props = PROPERTIES[fam]
    prop = prop or props[0]
    if prop not in props:
        raise NotifyError(f"protocol {protocol} has no property {prop!r}: use one of "
                          f"{', '.join(props)}")
    variant = protocol.partition("/")[2]
    if fam == "aio_notify":
        return _aio_notify(variant == "BUG")
    if fam == "aio_notify_bug":
        return _aio_notify_bug(variant == "BUG", prop == "req_cleared")
    return _aio_notify_accept(int(variant[3:]) if variant else 0, prop == "req_cleared")

