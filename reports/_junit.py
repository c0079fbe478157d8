"""The JUnit XML rendering, for CI systems (Jenkins, GitLab, GitHub test reporters).

Layout::

    <testsuites name="aioctx-verify: <campaign>" tests= failures= errors="0" skipped= time=>
      <testsuite name="properties">   one <testcase> per (property, checker)
      <testsuite name="mutants">      one <testcase> per mutant (only with a kill matrix)

Mapping: ``pass`` passes, ``fail`` is a ``<failure>`` (message, then the counterexample's
replay command and per-thread trace as its text), ``inconclusive`` and ``skipped`` are
``<skipped>`` with the reason (an inconclusive check is not evidence of a bug, and marking
it failed would teach people to ignore red).  A mutant that no checker killed is a
``<failure>``.  Each test case carries ``<properties>`` with the property, checker, seed and,
for a counterexample, the schedule string and replay command; the same lines go to
``<system-out>`` for CI systems that do not show test-case properties.

XML 1.0 cannot hold most control characters; they are written as ``\\xNN``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ._result import CampaignResult, Counterexample, KillMatrix, Verdict
from ._text import xml_safe as _x

__all__ = ["render_junit"]

def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, tag, {k: _x(v) for k, v in attrs.items()})
    if text is not None:
        e.text = _x(text)
    return e


def _props(parent: ET.Element, items: list[tuple[str, str]]) -> None:
    props = _el(parent, "properties")
    for name, value in items:
        _el(props, "property", name=name, value=value)


def _trace_text(c: Counterexample) -> str:
    lines = [f"{c.kind}: {c.message}"]
    if c.schedule is not None:
        lines.append(f"schedule: {c.schedule}")
    if c.replay_command is not None:
        lines.append(f"replay:   {c.replay_command}")
    if c.seed is not None:
        lines.append(f"seed:     {c.seed}")
    fail_at = c.failing_position
    for pos, s in enumerate(c.steps):
        mark = ">>" if pos == fail_at else "  "
        who = f"Thread {s.thread} ({s.thread_name})"
        lines.append(f"{mark}{s.index:5d}  {who:<22} | {s.where} | {s.op} {s.obj}")
    return "\n".join(lines)


def _verdict_case(
    suite: ET.Element, r: CampaignResult, v: Verdict, cexs: list[Counterexample]
) -> None:
    case = _el(
        suite,
        "testcase",
        classname=f"aioctx_verify.{v.property}",
        name=f"{v.property} [{v.checker}]",
        time=f"{v.seconds:.3f}",
    )
    items = [
        ("property", v.property),
        ("checker", v.checker),
        ("verdict", v.verdict),
        ("runs", str(v.runs)),
        ("seed", str(r.seed)),
    ]
    for i, c in enumerate(cexs):
        suffix = "" if i == 0 else f".{i + 1}"
        if c.seed is not None and c.seed != r.seed:
            items.append((f"counterexample{suffix}.seed", str(c.seed)))
        if c.schedule is not None:
            items.append((f"schedule{suffix}", c.schedule))
        if c.replay_command is not None:
            items.append((f"replay{suffix}", c.replay_command))
    _props(case, items)
    if v.verdict == "fail":
        message = cexs[0].message if cexs else v.detail or f"{v.property} fails"
        kind = cexs[0].kind if cexs else "property"
        body = "\n\n".join(_trace_text(c) for c in cexs) or v.detail
        _el(case, "failure", body, message=message, type=kind)
    elif v.verdict in ("inconclusive", "skipped"):
        _el(case, "skipped", message=f"{v.verdict}: {v.detail}" if v.detail else v.verdict)
    out = [f"{v.property} [{v.checker}]: {v.verdict}, {v.runs} runs, {v.seconds:.2f} s"]
    if v.detail:
        out.append(v.detail)
    out.append(f"seed: {r.seed}")
    out.extend(f"replay: {c.replay_command}" for c in cexs if c.replay_command is not None)
    _el(case, "system-out", "\n".join(out))


def _mutant_suite(root: ET.Element, r: CampaignResult, km: KillMatrix) -> tuple[int, int]:
    failures = sum(not m.killed for m in km.mutants)
    total = sum((m.seconds_to_kill or 0.0) for m in km.mutants)
    suite = _el(
        root,
        "testsuite",
        name="mutants",
        tests=str(len(km.mutants)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{total:.3f}",
    )
    rate = km.kill_rate
    _props(
        suite,
        [
            ("killed", f"{km.killed}/{len(km.mutants)}"),
            ("kill_rate", "n/a" if rate is None else f"{rate:.3f}"),
            ("false_alarms", str(km.false_alarms)),
        ],
    )
    for m in km.mutants:
        case = _el(
            suite,
            "testcase",
            classname=f"aioctx_verify.mutants.{m.property}",
            name=m.name,
            time=f"{m.seconds_to_kill or 0.0:.3f}",
        )
        _props(
            case,
            [
                ("qemu_commit", m.qemu_commit),
                ("property", m.property),
                ("killed_by", ",".join(m.killed_by)),
                ("seconds_to_kill", "" if m.seconds_to_kill is None else f"{m.seconds_to_kill:g}"),
                (
                    "counterexample_steps",
                    "" if m.counterexample_steps is None else str(m.counterexample_steps),
                ),
                ("seed", str(r.seed)),
            ],
        )
        if not m.killed:
            _el(
                case,
                "failure",
                f"mutant {m.name} (QEMU {m.qemu_commit}) breaks {m.property}, "
                "yet every checker passed it: the checks are too weak for this bug",
                message=f"mutant {m.name} survived: no checker killed it",
                type="survived",
            )
    return len(km.mutants), failures


def render_junit(r: CampaignResult) -> str:
    """The JUnit XML document for ``r`` (UTF-8 text with an XML declaration)."""
    root = ET.Element("testsuites", {"name": _x(f"aioctx-verify: {r.campaign}")})
    cex_by_key: dict[tuple[str, str], list[Counterexample]] = {}
    for c in r.counterexamples:
        cex_by_key.setdefault((c.property, c.checker), []).append(c)
    failures = sum(v.verdict == "fail" for v in r.verdicts)
    skipped = sum(v.verdict in ("inconclusive", "skipped") for v in r.verdicts)
    suite = _el(
        root,
        "testsuite",
        name="properties",
        tests=str(len(r.verdicts)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{sum(v.seconds for v in r.verdicts):.3f}",
        timestamp=r.started_at.isoformat(),
        hostname=r.machine.hostname,
    )
    _props(
        suite,
        [
            ("campaign", r.campaign),
            ("seed", str(r.seed)),
            ("budget", str(r.budget)),
            ("complete", "true" if r.complete else "false"),
            ("tool_version", r.tool_version),
            ("python", r.machine.python),
        ],
    )
    for v in r.verdicts:
        _verdict_case(suite, r, v, cex_by_key.get((v.property, v.checker), []))
    if not r.complete:
        _el(suite, "system-err", "the campaign was interrupted: verdicts cover only what ran")
    tests, fails = len(r.verdicts), failures
    if r.kill_matrix is not None:
        t, f = _mutant_suite(root, r, r.kill_matrix)
        tests, fails = tests + t, fails + f
    root.set("tests", str(tests))
    root.set("failures", str(fails))
    root.set("errors", "0")
    root.set("skipped", str(skipped))
    root.set("time", f"{r.seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
