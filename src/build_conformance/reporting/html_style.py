"""The report's stylesheet, inlined into report.html (no fonts, images or sheets are fetched)."""

from __future__ import annotations

from typing import Final

# Status colours carry a symbol as well (✓ ✗ ! –) so the matrix reads without colour vision.
CSS: Final = """
:root { --pass:#1a7f37; --pass-bg:#dafbe1; --fail:#cf222e; --fail-bg:#ffebe9; --warn:#9a6700;
  --warn-bg:#fff8c5; --err:#8250df; --err-bg:#fbefff; --skip:#57606a; --skip-bg:#eaeef2;
  --line:#d0d7de; --ink:#1f2328; --muted:#59636e; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#f6f8fa; line-height:1.45;
  font:14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans", Arial, sans-serif; }
main { max-width:1280px; margin:0 auto; padding:0 24px 48px; }
h1 { font-size:15px; font-weight:600; margin:0 0 6px; letter-spacing:.02em; opacity:.9; }
h2 { font-size:18px; margin:28px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
h3 { font-size:15px; margin:18px 0 8px; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size:12.5px; }
pre { white-space:pre-wrap; overflow-wrap:anywhere; margin:2px 0; padding:8px 10px; background:#fff;
  border:1px solid var(--line); border-radius:6px; max-height:28em; overflow:auto; }
.banner { padding:22px 24px 18px; color:#fff; }
.banner .inner { max-width:1280px; margin:0 auto; }
.banner .verdict { font-size:30px; font-weight:700; letter-spacing:.04em; }
.banner .why { font-size:15px; margin-top:4px; }
.banner .target { margin-top:8px; font-size:13px; opacity:.95; overflow-wrap:anywhere; }
.v-conformant { background:var(--pass); }
.v-non-conformant { background:var(--fail); }
.v-incomplete { background:#bc4c00; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-top:18px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:150px; }
.card .n { font-size:22px; font-weight:700; }
.card .l { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { border:1px solid var(--line); padding:6px 8px; text-align:left; vertical-align:top; }
th { background:#f0f3f6; font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.matrix td.fam { width:230px; }
.matrix .title { color:var(--muted); font-size:12px; }
.chips { display:flex; flex-wrap:wrap; gap:5px; }
.chip { display:inline-block; padding:2px 7px; border-radius:12px; border:1px solid; font-weight:600;
  font-size:12.5px; text-decoration:none; white-space:nowrap; }
.s-passed { color:var(--pass); background:var(--pass-bg); border-color:var(--pass); }
.s-failed { color:var(--fail); background:var(--fail-bg); border-color:var(--fail); }
.s-warning { color:var(--warn); background:var(--warn-bg); border-color:var(--warn); border-style:dashed; }
.s-error { color:var(--err); background:var(--err-bg); border-color:var(--err); }
.s-not-run { color:var(--skip); background:var(--skip-bg); border-color:#afb8c1; }
.legend { margin:8px 0 0; color:var(--muted); font-size:12.5px; display:flex; gap:10px; flex-wrap:wrap;
  align-items:center; }
details.req { background:#fff; border:1px solid var(--line); border-left-width:5px; border-radius:6px;
  margin:8px 0; }
details.req.r-failed { border-left-color:var(--fail); }
details.req.r-warning { border-left-color:var(--warn); }
details.req.r-error { border-left-color:var(--err); }
details.req > summary { cursor:pointer; padding:8px 12px 8px 6px; }
details.req > summary::marker { color:var(--muted); }
details.req > summary .stmt { color:var(--ink); font-weight:400; }
details.req > .body { padding:0 14px 12px; }
.obs { border-top:1px solid var(--line); padding-top:8px; margin-top:10px; }
.obs h4 { margin:0 0 6px; font-size:13px; }
dl.ev { display:grid; grid-template-columns:140px minmax(0, 1fr); gap:4px 12px; margin:6px 0; }
dl.ev dt { color:var(--muted); font-weight:600; }
dl.ev dd { margin:0; min-width:0; overflow-wrap:anywhere; }
.expected { color:var(--pass); }
.received { color:var(--fail); }
.muted { color:var(--muted); }
.kv th { width:230px; }
ul.reasons { margin:4px 0; padding-left:18px; }
section#run details { margin:10px 0; }
section#run summary { cursor:pointer; margin-bottom:6px; }
footer { max-width:1280px; margin:0 auto; padding:16px 24px 40px; color:var(--muted); font-size:12px; }
"""
