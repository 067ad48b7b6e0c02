"""report.html: one self-contained page for people (verdict, matrix, evidence, reproduction).

Self-contained means no scripts, fonts, images or stylesheets from anywhere: the page is often
opened from a CI artefact or a certification bundle, maybe offline, and evidence quoted from a
hostile server must not be able to make the viewer's browser fetch anything. A Content-Security-
Policy of `default-src 'none'` backs this up. The markup is well-formed XML (polyglot HTML), so
selftests can parse it with the standard library, and every value passes through `html.escape`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from typing import Any

from .evidence import fields
from .html_style import CSS
from .results_file import (
    LEVELS,
    REQUIREMENT_STATUSES,
    by_family,
    families,
    is_warning,
    problems_of,
    reason,
    verdict_summary,
)
from .text import one_line

SYMBOLS = {"passed": "✓", "failed": "✗", "warning": "✗", "error": "!", "not-run": "–"}
NONE = '<span class="muted">—</span>'
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; base-uri 'none'"


def e(value: object) -> str:
    return escape(str(value), quote=True)


def _css_status(requirement: dict[str, Any]) -> str:
    return "warning" if is_warning(requirement) else str(requirement["status"])


def _anchor(requirement: dict[str, Any]) -> str:
    return "req-" + "".join(c if c.isalnum() or c == "-" else "_" for c in str(requirement["id"]))


def _chip(requirement: dict[str, Any]) -> str:
    status = _css_status(requirement)
    label = "failed (SHOULD: warning)" if status == "warning" else status
    return (
        f'<a class="chip s-{e(status)}" href="#{_anchor(requirement)}" '
        f'title="{e(requirement["id"])} {e(label)}: {e(requirement["statement"])}">'
        f"{SYMBOLS.get(status, '?')} {e(requirement['id'])}</a>"
    )


def _kv_table(rows: Iterable[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{e(k)}</th><td>{_value(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _value(value: object) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return e(", ".join(map(str, value))) if value else '<span class="muted">none</span>'
    if isinstance(value, dict | list):
        return f'<span class="mono">{e(json.dumps(value, ensure_ascii=False, sort_keys=True))}</span>'
    return f'<span class="mono">{e(value)}</span>' if isinstance(value, str) and value else e(value)


# ---------------------------------------------------------------------------------------- sections


def _banner(results: dict[str, Any]) -> str:
    verdict = str(results.get("verdict", "incomplete"))
    target = results.get("target", {})
    server = f" · server {e(target['server'])}" if target.get("server") else ""
    faults = f" · faults switched on: {e(', '.join(target['faults']))}" if target.get("faults") else ""
    return (
        f'<header class="banner v-{e(verdict)}"><div class="inner">'
        "<h1>build-conformance · POST /v1/templates/builds/{build_id}/cancel</h1>"
        f'<div class="verdict">{e(verdict.upper())}</div>'
        f'<div class="why">{e(verdict_summary(results))}</div>'
        f'<div class="target">target <span class="mono">{e(target.get("base_url", ""))}</span>{server}{faults}'
        f" · profile {e(results.get('profile', ''))} · seed {e(results.get('seed'))}"
        f" · {e(results.get('started_at', ''))} → {e(results.get('finished_at', ''))}</div>"
        "</div></header>"
    )


def _cards(results: dict[str, Any]) -> str:
    counts = results.get("counts", {})
    cards = []
    for level in LEVELS:
        tally = counts.get(level, {})
        cards.append((f"{level} passed", f"{tally.get('passed', 0)} / {sum(tally.values())}"))
    for status in ("failed", "error", "not-run"):
        cards.append((status, str(sum(counts.get(level, {}).get(status, 0) for level in LEVELS))))
    cards += [
        ("requests sent", str(results.get("requests_sent", 0))),
        ("builds created", str(len(results.get("ledger", [])))),
    ]
    body = "".join(
        f'<div class="card"><div class="n">{e(n)}</div><div class="l">{e(label)}</div></div>' for label, n in cards
    )
    return f'<div class="cards">{body}</div>'


def _matrix(results: dict[str, Any]) -> str:
    titles = families(results)
    rows = []
    for family, requirements in by_family(results).items():
        cells = []
        for level in LEVELS:
            chips = "".join(_chip(r) for r in requirements if r["level"] == level) or NONE
            cells.append(f'<td><div class="chips">{chips}</div></td>')
        rows.append(
            f'<tr><td class="fam"><strong>{e(family)}</strong><div class="title">{e(titles.get(family, ""))}</div></td>'
            + "".join(cells)
            + "</tr>"
        )
    legend = "".join(
        f'<span class="chip s-{s}">{SYMBOLS[s]} {e(label)}</span>'
        for s, label in (
            ("passed", "passed"),
            ("failed", "failed"),
            ("warning", "SHOULD failed (warning)"),
            ("error", "error: could not judge"),
            ("not-run", "not run"),
        )
    )
    return (
        '<section id="matrix"><h2>Requirements by family</h2>'
        '<table class="matrix"><thead><tr><th>family</th><th>MUST</th><th>SHOULD</th></tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table><div class="legend">{legend}</div></section>'
    )


def _observation(requirement: dict[str, Any], observation: dict[str, Any], index: int, kept: int) -> str:
    what = "failure" if requirement["status"] == "failed" else "error"
    total = requirement.get("observations", {}).get("fail" if what == "failure" else "error", kept)
    rows = [
        ("test", f'<span class="mono">{e(observation.get("test", ""))}</span>'),
        ("message", e(observation.get("message", ""))),
    ]
    if observation.get("expected") is not None:
        rows.append(("expected", f'<span class="mono expected">{e(observation["expected"])}</span>'))
    if observation.get("received") is not None:
        rows.append(("received", f'<span class="mono received">{e(observation["received"])}</span>'))
    evidence = observation.get("evidence")
    if isinstance(evidence, dict):
        for label, text, block in fields(evidence):
            rows.append((label, f"<pre>{e(text)}</pre>" if block else f'<span class="mono">{e(text)}</span>'))
    body = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        f'<div class="obs"><h4>{what} {index} of {kept} kept ({e(total)} in all)</h4><dl class="ev">{body}</dl></div>'
    )


def _problem(requirement: dict[str, Any]) -> str:
    status = _css_status(requirement)
    problems = problems_of(requirement)
    observations = ", ".join(f"{k} {v}" for k, v in sorted(requirement.get("observations", {}).items()))
    tests = "".join(f'<li class="mono">{e(t)}</li>' for t in requirement.get("tests", []))
    return (
        f'<details class="req r-{e(status)}" id="{_anchor(requirement)}">'
        f"<summary>{_chip(requirement)} <strong>{e(requirement['level'])}</strong> "
        f'<span class="stmt">{e(requirement["statement"])}</span> '
        f'<span class="muted">— {e(one_line(reason(requirement), 180))}</span></summary>'
        f'<div class="body"><p><strong>{e(requirement["id"])}</strong> ({e(requirement["level"])}, '
        f"{e(requirement['family'])}): {e(requirement['statement'])}</p>"
        f'<p class="muted">observations: {e(observations)}</p>'
        f"<details><summary>{len(requirement.get('tests', []))} tests observed it</summary>"
        f'<ul class="reasons">{tests}</ul></details>'
        + "".join(_observation(requirement, o, i, len(problems)) for i, o in enumerate(problems, 1))
        + "</div></details>"
    )


def _problems(results: dict[str, Any]) -> str:
    requirements = results.get("requirements", [])
    parts = ['<section id="problems"><h2>Failures and errors</h2>']
    groups = (
        ("MUST failed", [r for r in requirements if r["level"] == "MUST" and r["status"] == "failed"]),
        (
            "MUST could not be judged (error)",
            [r for r in requirements if r["level"] == "MUST" and r["status"] == "error"],
        ),
        ("SHOULD failed (warnings: the verdict does not depend on them)", [r for r in requirements if is_warning(r)]),
        (
            "SHOULD could not be judged (error)",
            [r for r in requirements if r["level"] == "SHOULD" and r["status"] == "error"],
        ),
    )
    shown = False
    for title, group in groups:
        if group:
            shown = True
            parts.append(f"<h3>{e(title)} ({len(group)})</h3>" + "".join(_problem(r) for r in group))
    if not shown:
        parts.append("<p>No requirement failed or errored.</p>")
    else:
        parts.append(
            f'<p class="muted">Open a requirement for its evidence. Each <span class="mono">replay</span> line '
            f're-sends the request with <span class="mono">curl --path-as-is</span> (tokens redacted: substitute '
            f'yours); rerun the whole suite with <span class="mono">--seed {e(results.get("seed"))}</span> '
            "for the same generated inputs.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _not_run(results: dict[str, Any]) -> str:
    not_run = [r for r in results.get("requirements", []) if r["status"] == "not-run"]
    if not not_run:
        return ""
    musts = sum(1 for r in not_run if r["level"] == "MUST")
    note = f" A MUST that is not run makes the verdict incomplete ({musts} here)." if musts else ""
    rows = "".join(
        f"<tr><td>{_chip(r)}</td><td>{e(r['level'])}</td><td>{e(r['statement'])}</td>"
        f"<td>{e(one_line(reason(r), 300))}</td></tr>"
        for r in sorted(not_run, key=lambda r: LEVELS.index(r["level"]) if r["level"] in LEVELS else 9)
    )
    return (
        f'<section id="not-run"><h2>Not run ({len(not_run)})</h2>'
        f'<p class="muted">No observation judged these.{e(note)}</p>'
        "<table><thead><tr><th>requirement</th><th>level</th><th>statement</th><th>why not</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _all_requirements(results: dict[str, Any]) -> str:
    rows = []
    for r in results.get("requirements", []):
        anchor = "" if r["status"] in ("failed", "error") else f' id="{_anchor(r)}"'
        observations = ", ".join(f"{k} {v}" for k, v in sorted(r.get("observations", {}).items()))
        why = reason(r)
        rows.append(
            f"<tr{anchor}><td>{_chip(r)}</td><td>{e(r['level'])}</td><td>{e(r['statement'])}"
            + (f'<div class="muted">{e(one_line(why, 300))}</div>' if why else "")
            + f'</td><td class="num">{len(r.get("tests", []))}</td><td>{e(observations)}</td></tr>'
        )
    return (
        '<section id="requirements"><h2>All requirements</h2><table><thead><tr><th>requirement</th><th>level</th>'
        "<th>statement</th><th>tests</th><th>observations</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _run(results: dict[str, Any]) -> str:
    target = results.get("target", {})
    ledger = results.get("ledger", [])
    run_rows: list[tuple[str, object]] = [
        ("API base URL", target.get("base_url")),
        ("control URL", target.get("control_url")),
        ("server identity", target.get("server")),
        ("embedded reference server", target.get("embedded_reference_server")),
        ("faults switched on", target.get("faults", [])),
        ("profile", results.get("profile")),
        ("seed", results.get("seed")),
        ("trace id (every request's traceparent)", results.get("trace_id")),
        ("started", results.get("started_at")),
        ("finished", results.get("finished_at")),
        ("requests sent", results.get("requests_sent")),
        ("builds created (ledger)", len(ledger)),
        ("suite version", results.get("suite_version")),
        ("catalogue", f"{results.get('catalogue_version')} (sha256 {results.get('catalogue_digest')})"),
    ]
    shown = {"base_url", "control_url", "server", "embedded_reference_server", "faults"}
    run_rows += [(f"target {key}", value) for key, value in target.items() if key not in shown]
    config = results.get("configuration", {})
    digests = results.get("schema_digests", {})
    ledger_rows = "".join(
        f'<tr><td class="mono">{e(b.get("build_id"))}</td><td>{e(b.get("tenant"))}</td>'
        f"<td>{e(b.get('status'))}</td></tr>"
        for b in ledger
    )
    return (
        '<section id="run"><h2>The run</h2>'
        + _kv_table(run_rows)
        + "<h3>Configuration (credentials redacted)</h3>"
        + _kv_table(config.items())
        + f"<details><summary>Contract files judged against ({len(digests)}, sha256)</summary>"
        + _kv_table(digests.items())
        + "</details>"
        + f"<details><summary>Ledger: {len(ledger)} builds created by this run</summary>"
        + "<table><thead><tr><th>build</th><th>tenant</th><th>created as</th></tr></thead>"
        + f"<tbody>{ledger_rows}</tbody></table>"
        + "</details></section>"
    )


def render(results: dict[str, Any]) -> str:
    """report.html text; `results` must already be scrubbed (see text.scrub)."""
    verdict = str(results.get("verdict", "incomplete"))
    target = results.get("target", {})
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8"/>'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}"/>'
        '<meta name="referrer" content="no-referrer"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{e(verdict.upper())} · build-conformance · {e(target.get('base_url', ''))}</title>"
        f"<style>{CSS}</style></head><body>"
        + _banner(results)
        + "<main>"
        + _cards(results)
        + _matrix(results)
        + _problems(results)
        + _not_run(results)
        + _all_requirements(results)
        + _run(results)
        + "</main>"
        + f"<footer>build-conformance {e(results.get('suite_version', ''))} · catalogue "
        f"{e(results.get('catalogue_version', ''))} · rendered from results.json · statuses: "
        + ", ".join(e(s) for s in REQUIREMENT_STATUSES)
        + "</footer></body></html>\n"
    )
