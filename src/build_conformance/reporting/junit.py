"""junit.xml: one testcase per catalogue requirement, for CI systems that only understand JUnit.

A requirement is the unit CI should show (not the pytest tests that observed it): classname is the
family, name is the ID and a short statement. SHOULD failures stay failures, so they are visible,
but their message starts with "(SHOULD: warning)" because they do not change the verdict.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from .evidence import observation_text
from .results_file import is_warning, problems_of, reason
from .text import one_line, short_statement

WARNING_PREFIX = "(SHOULD: warning)"


def _instant(stamp: Any) -> datetime:
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def _duration(results: dict[str, Any]) -> str:
    """The run's wall-clock time (from started_at to finished_at, fractions kept when recorded)."""
    try:
        elapsed = (_instant(results["finished_at"]) - _instant(results["started_at"])).total_seconds()
    except (KeyError, ValueError, TypeError):
        return "0"
    return _seconds(elapsed)


def _requirement_time(requirement: dict[str, Any]) -> str:
    """Time spent in the tests that observed the requirement (`duration_s`), 0 when the run did not say."""
    value = requirement.get("duration_s")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _seconds(float(value))
    return "0"


def message(requirement: dict[str, Any]) -> str:
    """The one-line failure/error message CI shows next to the testcase."""
    why = one_line(reason(requirement), 300)
    if is_warning(requirement):
        return f"{WARNING_PREFIX} {requirement['id']} failed: {why}"
    return f"{requirement['id']} ({requirement['level']}) {requirement['status']}: {why}"


def details(requirement: dict[str, Any]) -> str:
    """The failure/error body: statement, counts, then every kept observation with its evidence."""
    observations = requirement.get("observations", {})
    lines = [
        f"{requirement['id']} ({requirement['level']}): {requirement['statement']}",
        f"status: {requirement['status']}"
        + (" (a SHOULD failure is a warning: it does not change the verdict)" if is_warning(requirement) else ""),
        "observations: " + ", ".join(f"{k} {v}" for k, v in sorted(observations.items())),
    ]
    problems = problems_of(requirement)
    total = observations.get("fail" if requirement["status"] == "failed" else "error", len(problems))
    for index, observation in enumerate(problems, 1):
        lines += ["", f"{requirement['status']} observation {index} of {len(problems)} kept ({total} in all):"]
        lines.append(observation_text(observation))
    return "\n".join(lines)


def _properties(parent: ET.Element, values: dict[str, Any]) -> None:
    properties = ET.SubElement(parent, "properties")
    for name, value in values.items():
        if value is not None:
            ET.SubElement(properties, "property", name=name, value=str(value))


def render(results: dict[str, Any]) -> str:
    """junit.xml text; `results` must already be scrubbed (see text.scrub)."""
    requirements = results.get("requirements", [])
    tally = {status: sum(1 for r in requirements if r["status"] == status) for status in ("failed", "error", "not-run")}
    attributes = {
        "name": "build-conformance",
        "tests": str(len(requirements)),
        "failures": str(tally["failed"]),
        "errors": str(tally["error"]),
        "skipped": str(tally["not-run"]),
        "time": _duration(results),
    }
    root = ET.Element("testsuites", attributes)
    suite = ET.SubElement(root, "testsuite", {**attributes, "timestamp": str(results.get("started_at", ""))})
    target = results.get("target", {})
    _properties(
        suite,
        {
            "verdict": results.get("verdict"),
            "suite_version": results.get("suite_version"),
            "catalogue_version": results.get("catalogue_version"),
            "catalogue_digest": results.get("catalogue_digest"),
            "profile": results.get("profile"),
            "seed": results.get("seed"),
            "base_url": target.get("base_url"),
            "control_url": target.get("control_url"),
            "server": target.get("server"),
            "requests_sent": results.get("requests_sent"),
            "ledger_size": len(results.get("ledger", [])),
        },
    )
    for r in requirements:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=r["family"],
            name=f"{r['id']} {short_statement(r['statement'])}",
            time=_requirement_time(r),
        )
        if r["status"] == "failed":
            failure = ET.SubElement(case, "failure", message=message(r), type=f"{r['level']} requirement failed")
            failure.text = details(r)
        elif r["status"] == "error":
            error = ET.SubElement(case, "error", message=message(r), type="could not judge")
            error.text = details(r)
        elif r["status"] == "not-run":
            ET.SubElement(case, "skipped", message=f"not run: {one_line(reason(r), 500)}")
        elif reason(r):  # passed, judged in part: CI shows it beside the pass
            ET.SubElement(case, "system-out").text = f"passed — {reason(r)}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
