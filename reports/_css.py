"""The report page's stylesheet (inline in the page: no file is fetched)."""

CSS = """
:root { --fg:#1d2329; --muted:#5f6b76; --bg:#f4f5f7; --card:#fff; --line:#d9dde2;
  --pass:#2e7d32; --pass-bg:#e7f4e8; --fail:#c62828; --fail-bg:#fdeaea;
  --warn:#a15c00; --warn-bg:#fff3dc; --skip:#757575; --skip-bg:#efefef; --accent:#1f6fb2; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main, header.banner, nav { max-width: 1180px; margin: 0 auto; }
header.banner { margin-top: 20px; padding: 18px 24px; border-radius: 10px; border-left: 8px solid; }
header.banner.pass { background: var(--pass-bg); border-color: var(--pass); }
header.banner.fail { background: var(--fail-bg); border-color: var(--fail); }
header.banner.warn { background: var(--warn-bg); border-color: var(--warn); }
header.banner h1 { margin: 0 0 4px; font-size: 26px; }
header.banner.pass h1 { color: var(--pass); } header.banner.fail h1 { color: var(--fail); }
header.banner.warn h1 { color: var(--warn); }
header.banner p { margin: 4px 0; }
dl.meta { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 12px 0 0; font-size: 13px; }
dl.meta div { display: flex; gap: 6px; } dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
nav { display: flex; flex-wrap: wrap; gap: 14px; padding: 12px 4px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 22px 18px; margin: 0 0 18px; }
h2 { font-size: 19px; margin: 4px 0 12px; } h3 { font-size: 16px; margin: 18px 0 6px; }
p.note { color: var(--muted); font-size: 13px; margin: 6px 0; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.v { min-width: 118px; } td.v b { display: block; text-transform: uppercase; font-size: 12px;
  letter-spacing: .04em; } td.v small, .small { color: var(--muted); font-size: 12px; }
.v-pass { background: var(--pass-bg); } .v-pass b { color: var(--pass); }
.v-fail { background: var(--fail-bg); } .v-fail b { color: var(--fail); }
.v-inconclusive { background: var(--warn-bg); } .v-inconclusive b { color: var(--warn); }
.v-skipped, .v-none { background: var(--skip-bg); } .v-skipped b, .v-none b { color: var(--skip); }
td.v a { color: var(--fail); font-size: 12px; }
.regressions { border-color: var(--fail); background: var(--fail-bg); }
.regressions li { color: var(--fail); margin: 3px 0; }
article.cex { border-top: 1px solid var(--line); padding-top: 6px; margin-top: 10px; }
article.cex:first-of-type { border-top: 0; margin-top: 0; }
.cex .msg { font-weight: 600; color: var(--fail); margin: 4px 0 8px; }
.replay { display: flex; align-items: center; gap: 10px; margin: 8px 0 12px; flex-wrap: wrap; }
.replay span { font-size: 13px; color: var(--muted); }
code.cmd { background: #1d2329; color: #e8eef3; padding: 7px 12px; border-radius: 6px;
  font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  user-select: all; -webkit-user-select: all; white-space: pre-wrap; word-break: break-all; }
.lanes-wrap { overflow: auto; max-height: 72vh; border: 1px solid var(--line); border-radius: 8px; }
.lanes { display: grid; gap: 3px 10px; padding: 0 10px 10px; min-width: max-content;
  font: 12.5px/1.35 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.lanes .head { position: sticky; top: 0; background: var(--card); padding: 8px 4px 6px;
  border-bottom: 2px solid var(--line); font-weight: 600; font-family: system-ui, sans-serif;
  font-size: 13px; z-index: 1; }
.lanes .idx { color: var(--muted); text-align: right; padding: 5px 0; }
.lanes .step { background: #eef3f8; border-left: 3px solid var(--accent); border-radius: 4px;
  padding: 4px 8px; }
.lanes .step .op { font-weight: 700; } .lanes .step .where { display: block; color: var(--muted);
  font-size: 11.5px; }
.lanes .step.broke { background: var(--fail-bg); border-left-color: var(--fail);
  outline: 2px solid var(--fail); }
.lanes .step.broke .why { display: block; color: var(--fail); font-weight: 700;
  font-family: system-ui, sans-serif; }
.hist { display: flex; flex-wrap: wrap; gap: 12px 36px; }
figure { margin: 0; } figcaption { font-size: 14px; margin-bottom: 4px; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); } svg text.num { font-weight: 600; }
svg .track { fill: #f0f2f5; } svg .axis { stroke: var(--line); }
.legend { display: flex; gap: 16px; font-size: 12px; color: var(--muted); margin: 6px 0; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 5px; vertical-align: -1px; }
td.k-yes { background: var(--pass-bg); color: var(--pass); font-weight: 600; }
td.k-no { background: var(--fail-bg); color: var(--fail); font-weight: 600; }
td.k-none { background: var(--skip-bg); color: var(--skip); }
tr.survived td.name { color: var(--fail); font-weight: 600; }
.trend td { vertical-align: middle; } .trend td.flag { background: var(--fail-bg); }
.trend + .hist { margin-top: 14px; }
.flagtext { color: var(--fail); font-weight: 700; font-size: 12px; }
details { margin: 6px 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f0f2f5; padding: 10px; border-radius: 6px; overflow: auto; font-size: 12.5px; }
footer { max-width: 1180px; margin: 0 auto 28px; color: var(--muted); font-size: 12px; }
@media print { body { background: #fff; } .lanes-wrap { max-height: none; overflow: visible; } }
"""
