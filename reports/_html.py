"""The HTML rendering: one self-contained file a person reads, offline.

No network at all: CSS and SVG are inline, there is no script, and a Content-Security-Policy
of ``default-src 'none'`` makes the browser refuse any fetch should a URL ever slip in.
Every piece of text from the result is escaped (:func:`aioctx_verify.reports._text.esc`).

Sections, in reading order: a banner (do all properties hold? what regressed?), the verdict
table (property x checker), counterexamples as swimlanes (one column per thread, one row
per step, the step where the property broke in red, the replay command to copy), outcome
histograms, the mutant kill matrix, coverage, trends from the history, benchmarks and
watchdog stack dumps.  Layout follows the swimlane views of trace viewers (Perfetto, Chrome
tracing) scaled down to what a shrunk counterexample needs.
"""

from __future__ import annotations

from ._css import CSS as _CSS
from ._history import Trends
from ._result import (
    PROPERTIES,
    PROPERTY_TITLES,
    SCHEMA_VERSION,
    CampaignResult,
    Counterexample,
    KillMatrix,
    PropertyName,
    Verdict,
    tool_version,
)
from ._svg import GRADE_COLOURS, outcome_bars, sparkline, verdict_strip
from ._text import esc, fmt_num, fmt_seconds

__all__ = ["render_html"]



def _verdict_cell(v: Verdict | None, cex_anchor: str | None) -> str:
    if v is None:
        return '<td class="v v-none" title="not run"><b>not run</b></td>'
    tip = f' title="{esc(v.detail)}"' if v.detail else ""
    link = f'<br><a href="#{cex_anchor}">counterexample</a>' if cex_anchor else ""
    detail = f"<br><small>{esc(v.detail)}</small>" if v.detail and v.verdict != "pass" else ""
    return (
        f'<td class="v v-{v.verdict}"{tip}><b>{esc(v.verdict)}</b>'
        f"<small>{fmt_num(v.runs)} runs \u00b7 {fmt_seconds(v.seconds)}</small>{detail}{link}</td>"
    )


def _banner(r: CampaignResult, trends: Trends | None) -> str:
    failed = r.failed
    inconclusive = [v for v in r.verdicts if v.verdict == "inconclusive"]
    checked = [p for p in PROPERTIES if any(v.property == p for v in r.verdicts)]
    if failed:
        cls = "fail"
        by_prop: dict[PropertyName, list[str]] = {}
        for v in failed:
            by_prop.setdefault(v.property, []).append(v.checker)
        head = "\u2717 " + "; ".join(f"{p} fails" for p in by_prop)
        line = "; ".join(
            f"{p} ({esc(PROPERTY_TITLES[p])}) fails under {esc(', '.join(cs))}"
            for p, cs in by_prop.items()
        )
    elif not r.verdicts:
        cls, head, line = "warn", "No property was checked", "the campaign has no verdicts"
    else:
        cls = "warn" if inconclusive or not r.complete else "pass"
        head = "\u2713 All properties hold"
        line = f"{', '.join(checked)} checked by {len(r.checkers)} checker(s); none failed"
        if inconclusive:
            what = ", ".join(f"{v.property} / {v.checker}" for v in inconclusive)
            line += f"; inconclusive: {esc(what)}"
    lines = [f"<p>{line}</p>"]
    if not r.complete:
        cls = "fail" if cls == "fail" else "warn"
        lines.append(
            "<p><b>The campaign was interrupted</b> after "
            f"{esc(fmt_seconds(r.seconds))}: the results are partial.</p>"
        )
    if trends is not None and trends.regressions:
        n = len(trends.regressions)
        lines.append(
            f'<p><a href="#regressions"><b>{n} regression(s)</b></a> since earlier runs.</p>'
        )
    km = r.kill_matrix
    if km is not None and km.mutants:
        survivors = [m.name for m in km.mutants if not m.killed]
        text = f"Mutants killed: {km.killed}/{len(km.mutants)}"
        if survivors:
            text += f"; survived: {', '.join(survivors)}"
        lines.append(f"<p>{esc(text)}.</p>")
    meta = [
        ("campaign", r.campaign),
        ("started", r.started_at.isoformat(sep=" ", timespec="seconds")),
        ("took", fmt_seconds(r.seconds)),
        ("seed", str(r.seed)),
        ("budget", str(r.budget)),
        ("machine", f"{r.machine.hostname}, {r.machine.cpu_count} CPUs, {r.machine.python}"),
        ("aioctx-verify", r.tool_version),
    ]
    dl = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in meta)
    return (
        f'<header class="banner {cls}" id="summary"><h1>{esc(head)}</h1>'
        f'{"".join(lines)}<dl class="meta">{dl}</dl></header>'
    )


def _verdicts(r: CampaignResult, anchors: dict[tuple[str, str], str]) -> str:
    checkers = r.checkers
    if not checkers:
        return '<section id="verdicts"><h2>Verdicts</h2><p class="note">No verdicts.</p></section>'
    head = "".join(f"<th>{esc(c)}</th>" for c in checkers)
    rows = []
    for p in PROPERTIES:
        cells = "".join(
            _verdict_cell(r.verdict(p, c), anchors.get((p, c))) for c in checkers
        )
        title = f'<small class="small">{esc(PROPERTY_TITLES[p])}</small>'
        rows.append(f"<tr><th>{p}<br>{title}</th>{cells}</tr>")
    return (
        '<section id="verdicts"><h2>Verdicts by property and checker</h2>'
        f"<table><thead><tr><th>property</th>{head}</tr></thead><tbody>{''.join(rows)}"
        "</tbody></table><p class=\"note\">runs: schedules, stress iterations or model states "
        "the checker spent; hover a cell for its detail.</p></section>"
    )


def _swimlanes(c: Counterexample) -> str:
    threads = c.threads
    if not c.steps:
        return '<p class="note">No trace was recorded for this counterexample.</p>'
    col = {t: i + 2 for i, (t, _) in enumerate(threads)}
    cols = f"3.5em repeat({len(threads)}, minmax(15em, 1fr))"
    cells = ['<div class="head" style="grid-row:1;grid-column:1">#</div>']
    for t, name in threads:
        cells.append(
            f'<div class="head" style="grid-row:1;grid-column:{col[t]}">Thread {t} '
            f"\u00b7 {esc(name)}</div>"
        )
    broke = c.failing_position
    for pos, s in enumerate(c.steps):
        row = pos + 2
        mark = ""
        cls = "step"
        if pos == broke:
            cls += " broke"
            mark = f'<span class="why">\u2717 {esc(c.property)} broke here</span>'
        cells.append(f'<div class="idx" style="grid-row:{row};grid-column:1">{s.index}</div>')
        cells.append(
            f'<div class="{cls}" style="grid-row:{row};grid-column:{col[s.thread]}">{mark}'
            f'<span class="op">{esc(s.op)}</span> <span class="obj">{esc(s.obj)}</span>'
            f'<span class="where">{esc(s.where)}</span></div>'
        )
    return (
        f'<div class="lanes-wrap"><div class="lanes" style="grid-template-columns:{cols}">'
        f"{''.join(cells)}</div></div>"
    )


def _counterexamples(r: CampaignResult, anchors: dict[int, str]) -> str:
    if not r.counterexamples:
        return ""
    parts = ['<section id="counterexamples"><h2>Counterexamples</h2>']
    for i, c in enumerate(r.counterexamples):
        facts = [f"{len(c.steps)} steps", f"{len(c.threads)} threads"]
        if c.preemptions is not None:
            facts.append(f"{c.preemptions} preemption(s)")
        if c.seed is not None:
            facts.append(f"seed {c.seed}")
        parts.append(
            f'<article class="cex" id="{anchors[i]}"><h3>{esc(c.property)} broke under '
            f"{esc(c.checker)}: {esc(c.kind)}</h3>"
            f'<p class="msg">{esc(c.message)}</p>'
            f'<p class="note">{esc(", ".join(facts))}'
            + (f" \u00b7 schedule <code>{esc(c.schedule)}</code>" if c.schedule else "")
            + "</p>"
        )
        if c.replay_command:
            parts.append(
                '<div class="replay"><span>Replay (click to select):</span>'
                f'<code class="cmd">{esc(c.replay_command)}</code></div>'
            )
        parts.append(_swimlanes(c) + "</article>")
    parts.append("</section>")
    return "".join(parts)


def _histograms(r: CampaignResult) -> str:
    if not r.histograms:
        return ""
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{esc(g)}</span>'
        for g, colour in GRADE_COLOURS.items()
    )
    figs = []
    for h in r.histograms:
        total = sum(h.counts.values())
        bad = h.forbidden
        note = f"{total:,} runs"
        if bad:
            note += f', <b style="color:var(--fail)">{bad:,} FORBIDDEN</b>'
        figs.append(
            f"<figure><figcaption><b>{esc(h.workload)}</b> \u00b7 {note}</figcaption>"
            f"{outcome_bars(h.outcomes, title=f'outcomes of {h.workload}')}</figure>"
        )
    return (
        '<section id="histograms"><h2>Stress outcomes</h2>'
        f'<div class="legend">{legend}</div><div class="hist">{"".join(figs)}</div>'
        '<p class="note">Bars on a log scale; an outcome no grade lists is FORBIDDEN.</p></section>'
    )


def _kill_matrix(km: KillMatrix) -> str:
    checkers = km.checkers
    head = "".join(f"<th>{esc(c)}</th>" for c in checkers)
    rows = []
    for m in km.mutants:
        cells = []
        for ch in checkers:
            cell = m.cell(ch)
            if cell is None:
                cells.append('<td class="k-none">not run</td>')
            elif cell.killed:
                extra = f"<br><small>{cell.steps} steps</small>" if cell.steps is not None else ""
                t = fmt_seconds(cell.seconds) if cell.seconds is not None else "killed"
                cells.append(f'<td class="k-yes">{esc(t)}{extra}</td>')
            else:
                # Without per-checker cells, "not in killed_by" may also mean "not run".
                cells.append(f'<td class="k-no">{"survived" if m.cells else "not killed"}</td>')
        cls = "" if m.killed else ' class="survived"'
        rows.append(
            f"<tr{cls}><td class=\"name\">{esc(m.name)}</td><td><code>{esc(m.qemu_commit)}</code>"
            f"</td><td>{esc(m.property)}</td>{''.join(cells)}"
            f'<td class="num">{esc(fmt_seconds(m.seconds_to_kill))}</td></tr>'
        )
    def kills(ch: str) -> int:
        return sum(1 for m in km.mutants if (cell := m.cell(ch)) is not None and cell.killed)

    per = "".join(f'<td class="num">{kills(ch)}/{len(km.mutants)}</td>' for ch in checkers)
    rate = km.kill_rate
    summary = (
        f"Kill rate {km.killed}/{len(km.mutants)}"
        + (f" ({rate:.0%})" if rate is not None else "")
        + f" \u00b7 false alarms on safe programs: {km.false_alarms}"
    )
    return (
        '<section id="kill-matrix"><h2>Mutant kill matrix</h2>'
        f"<p>{esc(summary)}</p><table><thead><tr><th>mutant</th><th>QEMU commit</th>"
        f"<th>property</th>{head}<th>fastest kill</th></tr></thead><tbody>{''.join(rows)}"
        f'</tbody><tfoot><tr><th colspan="3">killed</th>{per}<td></td></tr></tfoot></table>'
        '<p class="note">Green: time to the first failure (and the counterexample\'s length); '
        "red: the checker ran and the mutant survived.</p></section>"
    )


def _coverage(r: CampaignResult) -> str:
    c = r.coverage
    if c is None:
        return ""
    rows = [
        ("schedules run", fmt_num(c.schedules)),
        ("distinct traces", fmt_num(c.distinct_traces)),
        ("model states", fmt_num(c.states) if c.states is not None else "no model run"),
        ("deepest preemption", fmt_num(c.max_preemptions)),
        ("scheduling steps per second", fmt_num(c.steps_per_second)),
        ("schedules per second", fmt_num(c.schedules_per_second)),
    ]
    body = "".join(f'<tr><th>{esc(k)}</th><td class="num">{esc(v)}</td></tr>' for k, v in rows)
    return f'<section id="coverage"><h2>Coverage</h2><table>{body}</table></section>'


def _trends(r: CampaignResult, trends: Trends | None, history_error: str | None) -> str:
    parts = ['<section id="trends"><h2>Trends</h2>']
    if history_error is not None:
        parts.append(f'<p class="flagtext">History not read: {esc(history_error)}</p>')
    if trends is None:
        if history_error is None:
            parts.append('<p class="note">No history given: pass <code>--history PATH</code> '
                         "to keep one and draw trends here.</p>")
        parts.append("</section>")
        return "".join(parts)
    entries = trends.entries
    labels = [e.started_at for e in entries]
    parts.append(
        f'<p class="note">{len(entries)} run(s) of campaign {esc(r.campaign)} from '
        f"{esc(trends.source)}, oldest first; the last is this run.</p>"
    )
    checkers = r.checkers
    head = "".join(f"<th>{esc(c)}</th>" for c in checkers)
    rows = []
    for p in PROPERTIES:
        cells = []
        for c in checkers:
            v = r.verdict(p, c)
            if v is None:
                cells.append('<td class="v-none"></td>')
                continue
            subject = f"{p} / {c}"
            flagged = trends.is_regressed("verdict", subject)
            strip = verdict_strip(
                [e.verdict(p, c) for e in entries],
                title=f"verdicts of {subject}, oldest first",
                labels=labels,
                flagged=flagged,
            )
            flag = '<br><span class="flagtext">REGRESSION: passed, now fails</span>'
            cls = ' class="flag"' if flagged else ""
            cells.append(f"<td{cls}>{strip}<br><small>{esc(v.verdict)}</small>"
                         f"{flag if flagged else ''}</td>")
        rows.append(f"<tr><th>{p}</th>{''.join(cells)}</tr>")
    parts.append(
        f'<table class="trend"><thead><tr><th>property</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    figs = []
    for kind, label, values, fmt in (
        ("kill_rate", "kill rate", [e.kill_rate for e in entries], lambda x: f"{x:.0%}"),
        ("throughput", "throughput (steps/s)", [e.throughput for e in entries], fmt_num),
    ):
        flagged = trends.is_regressed(kind)
        last = values[-1]
        now = fmt(last) if last is not None else "-"
        flag = ' <span class="flagtext">REGRESSION</span>' if flagged else ""
        known = [x for x in values if x is not None]
        span = f"range {fmt(min(known))} to {fmt(max(known))}" if known else "no data"
        figs.append(
            f"<figure><figcaption><b>{esc(label)}</b>: {esc(now)}{flag}</figcaption>"
            f"{sparkline(values, title=label, flagged=flagged)}"
            f'<p class="note">{esc(span)} over {len(values)} run(s)</p></figure>'
        )
    parts.append(f'<div class="hist">{"".join(figs)}</div></section>')
    return "".join(parts)


def _regressions(trends: Trends | None) -> str:
    if trends is None or not trends.regressions:
        return ""
    items = "".join(f"<li>{esc(g.message)}</li>" for g in trends.regressions)
    return (
        f'<section id="regressions" class="regressions"><h2>Regressions</h2><ul>{items}</ul>'
        "</section>"
    )


def _benchmarks(r: CampaignResult) -> str:
    if not r.benchmarks:
        return ""
    rows = "".join(
        f"<tr><td>{esc(b.name)}</td><td class=\"num\">{fmt_num(b.ours)}</td>"
        f'<td class="num">{fmt_num(b.peer)}</td><td class="num">{fmt_num(b.ratio)}</td>'
        f"<td>{esc(b.unit)}</td><td>{esc(b.target)}</td>"
        f'<td class="{"k-yes" if b.met else "k-no"}">{"met" if b.met else "missed"}</td></tr>'
        for b in r.benchmarks
    )
    return (
        '<section id="benchmarks"><h2>Benchmarks</h2><table><thead><tr><th>benchmark</th>'
        '<th class="num">ours</th><th class="num">peer</th><th class="num">ratio</th><th>unit</th>'
        f"<th>target</th><th>target met</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


_PROOF_CLASS = {"proven": "k-yes", "bounded": "k-none", "refuted": "k-no",
                "necessary": "k-yes", "not-needed-at-this-size": "k-none", "undecided": "k-none"}


def _proofs(r: CampaignResult) -> str:
    if not r.proofs and not r.barriers:
        return ""
    parts = ['<section id="proofs"><h2>Proofs (z3)</h2>']
    if r.proofs:
        rows = "".join(
            f"<tr><td>{esc(p.model)}</td><td>{esc(p.memory)}</td><td>{esc(p.property)}</td>"
            f'<td class="{_PROOF_CLASS[p.verdict]}">{esc(p.verdict)}</td>'
            f'<td class="num">{p.depth}</td><td class="num">{p.seconds:.2f}</td>'
            f'<td class="num">{"" if p.counterexample_steps is None else p.counterexample_steps}'
            f"</td><td>{esc(p.detail)}</td></tr>"
            for p in r.proofs
        )
        parts.append(
            "<table><thead><tr><th>model</th><th>memory</th><th>property</th><th>verdict</th>"
            '<th class="num">depth</th><th class="num">seconds</th><th class="num">cex steps'
            f"</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>"
            '<p class="note">proven: at every depth (depth: the k of the induction that '
            "closed); bounded: no violation within depth steps; refuted: a shortest "
            "counterexample of that many steps (its swimlane is under Counterexamples). "
            "Liveness is a search for deadlocks and weakly fair lassos: it is bounded or "
            "refuted.</p>"
        )
    if r.barriers:
        rows = "".join(
            f"<tr><td><code>{esc(b.site)}</code></td><td>{esc(b.change)}</td>"
            f'<td class="{_PROOF_CLASS[b.verdict]}">{esc(b.verdict)}</td>'
            f"<td>{esc(b.memory or '')}</td><td>{esc(b.detail)}</td></tr>"
            for b in r.barriers
        )
        parts.append(
            '<h3 id="barriers">Barrier audit</h3><table><thead><tr><th>site</th><th>change'
            "</th><th>verdict</th><th>memory</th><th>detail</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            '<p class="note">Every fence and non-relaxed ordering of impl, found in its '
            "source, dropped or weakened in turn: necessary when a program then fails "
            "(under that memory model), not needed at this size when the exhaustive search "
            "of the programs that reach it finds nothing.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _stacks(r: CampaignResult) -> str:
    if not r.stacks:
        return ""
    items = "".join(
        f"<details><summary>{esc(s.thread)}"
        + (f" (ident {s.ident})" if s.ident is not None else "")
        + f"</summary><pre>{esc(s.stack)}</pre></details>"
        for s in r.stacks
    )
    return (
        '<section id="stacks"><h2>Watchdog stack dumps</h2><p class="note">A run hung; the '
        f"watchdog dumped every thread's stack and failed the run.</p>{items}</section>"
    )


def _shard_notes(r: CampaignResult) -> str:
    if not r.shard_notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in r.shard_notes)
    return (
        '<section id="shards"><h2>Shards</h2><p class="note">Shards retried after their '
        "worker died (each result counted once), cut off at their deadline, or lost.</p>"
        f"<ul>{items}</ul></section>"
    )


def render_html(
    r: CampaignResult, trends: Trends | None = None, *, history_error: str | None = None
) -> str:
    """The report page for ``r``, with ``trends`` from the history when given."""
    cex_anchor = {i: f"cex-{i + 1}" for i in range(len(r.counterexamples))}
    by_key: dict[tuple[str, str], str] = {}
    for i, c in enumerate(r.counterexamples):
        by_key.setdefault((c.property, c.checker), cex_anchor[i])
    sections = [
        _regressions(trends),
        _verdicts(r, by_key),
        _counterexamples(r, cex_anchor),
        _histograms(r),
        _kill_matrix(r.kill_matrix) if r.kill_matrix is not None else "",
        _proofs(r),
        _coverage(r),
        _trends(r, trends, history_error),
        _benchmarks(r),
        _stacks(r),
        _shard_notes(r),
    ]
    names = {
        "regressions": "Regressions",
        "verdicts": "Verdicts",
        "counterexamples": "Counterexamples",
        "histograms": "Outcomes",
        "kill-matrix": "Kill matrix",
        "proofs": "Proofs",
        "coverage": "Coverage",
        "trends": "Trends",
        "benchmarks": "Benchmarks",
        "stacks": "Stacks",
        "shards": "Shards",
    }
    body = "".join(sections)
    nav = "".join(
        f'<a href="#{k}">{v}</a>' for k, v in names.items() if f'id="{k}"' in body
    )
    title = f"aioctx-verify \u00b7 {r.campaign} \u00b7 {r.summary()}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"{_banner(r, trends)}<nav>{nav}</nav><main>{body}</main>"
        f"<footer>Result written by aioctx-verify {esc(r.tool_version)} (schema "
        f"v{SCHEMA_VERSION}); page rendered by aioctx-verify {esc(tool_version())}. "
        "Re-render with <code>aioctx-verify report report.json</code>."
        "</footer></body></html>\n"
    )
