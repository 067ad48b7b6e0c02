"""The contract as code: the JSON Schemas in ``schemas/``, validation with JSON paths, requirement IDs.

The schema files are the single source of truth for shapes; this module only loads them, validates
against them and explains failures. Decisions behind each schema are in ``schemas/DECISIONS.md``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urldefrag, urljoin

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .resources import schemas_dir

BASE_URI: Final = "https://build-conformance.invalid/schemas/"
DRAFT202012_URI: Final = "https://json-schema.org/draft/2020-12/schema"

COMMON: Final = "common.schema.json"
SNAPSHOT: Final = "template-build-status-snapshot.schema.json"
BUILD: Final = "template-build.schema.json"
LOG_ENTRY: Final = "template-build-log-entry.schema.json"
ERROR_RESPONSE: Final = "error-response.schema.json"
CANCEL_REQUEST: Final = "cancel-template-build-request.schema.json"
FAILURE_DETAIL: Final = "template-failure-detail.schema.json"
READINESS_PROBE: Final = "template-readiness-probe.schema.json"
OPENAPI: Final = "openapi.json"

# Schema file -> its name under the OpenAPI document's components/schemas (the SDK's model names).
COMPONENTS: Final[Mapping[str, str]] = {
    COMMON: "Common",
    SNAPSHOT: "TemplateBuildStatusSnapshot",
    BUILD: "TemplateBuild",
    "template-build-config.schema.json": "TemplateBuildConfig",
    "template-build-cache-summary.schema.json": "TemplateBuildCacheSummary",
    "template-build-artifact-availability.schema.json": "TemplateBuildArtifactAvailability",
    "template-build-promotability.schema.json": "TemplateBuildPromotability",
    "template-runtime-defaults.schema.json": "TemplateRuntimeDefaults",
    READINESS_PROBE: "TemplateReadinessProbe",
    "template-oci-image-metadata.schema.json": "TemplateOciImageMetadata",
    "template-oci-healthcheck-metadata.schema.json": "TemplateOciHealthcheckMetadata",
    FAILURE_DETAIL: "TemplateFailureDetail",
    "upload-failure-detail.schema.json": "UploadFailureDetail",
    "template-info.schema.json": "TemplateInfo",
    "template-build-result-metadata.schema.json": "TemplateBuildResultMetadata",
    LOG_ENTRY: "TemplateBuildLogEntry",
    ERROR_RESPONSE: "ErrorResponse",
    CANCEL_REQUEST: "CancelTemplateBuildRequest",
}
SCHEMA_FILES: Final[tuple[str, ...]] = tuple(COMPONENTS)
# Schemas of the suite's own files (its report and its configuration), not of the API contract:
# they live beside the contract but are neither components of the OpenAPI document nor digested.
TOOL_SCHEMA_FILES: Final[tuple[str, ...]] = ("results.schema.json", "config.schema.json")

DATE_TIME_LOCATION: Final = f"{COMMON}#/$defs/date-time/"



@dataclass(frozen=True)
class Violation:
    """One way an instance breaks a schema.

    ``message`` names the offending value but not the path, so callers can print
    ``f"{v.json_path}: {v.message}"`` (which is also ``str(v)``).
    """

    json_path: str  # where in the instance, e.g. "$.entries[0].kind"
    message: str
    value: object  # the offending instance value (the parent object for a missing property)
    schema_path: str  # the failing keyword, e.g. "template-build.schema.json#/properties/status/enum"

    @property
    def keyword(self) -> str:
        """The JSON Schema keyword that failed (``required``, ``type``, ``enum``, ``pattern``, …)."""
        return self.schema_path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.json_path}: {self.message}"


# ---------------------------------------------------------------------------------------------- loading


@cache
def _load(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((schemas_dir() / name).read_text(encoding="utf-8")))


def schema(schema_name: str) -> dict[str, Any]:
    """A copy of one schema file's contents (a copy, so callers cannot corrupt the cached one)."""
    return copy.deepcopy(_load(schema_name))


@cache
def _validated_contents(name: str) -> dict[str, Any]:
    contents = _load(name)
    if contents.get("$id") != BASE_URI + name:
        raise ValueError(f"{name}: $id must be {BASE_URI + name!r}, found {contents.get('$id')!r}")
    if contents.get("$schema") != DRAFT202012_URI:
        raise ValueError(f"{name}: $schema must be {DRAFT202012_URI!r}")
    # Without "$schema": jsonschema switches to the stock validator class for every resource that
    # declares a dialect (Validator.evolve -> validator_for), which would silently drop our strict
    # integer check below the first $ref. The registry pins the dialect instead.
    return {key: value for key, value in contents.items() if key != "$schema"}


@cache
def registry() -> Registry[Any]:
    """Every schema file, registered under its ``$id`` so relative ``$ref``s resolve offline."""
    resources = [
        (BASE_URI + name, Resource.from_contents(_validated_contents(name), default_specification=DRAFT202012))
        for name in SCHEMA_FILES
    ]
    return Registry().with_resources(resources).crawl()


def _is_json_integer(_checker: object, instance: object) -> bool:
    # JSON Schema counts 1.0 as an integer; the official client does not (next_offset 1.0 is rejected as
    # invalid_response), and json.loads keeps the distinction, so the suite reads "integer" literally.
    return isinstance(instance, int) and not isinstance(instance, bool)


_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_json_integer),
)

# Only our own date-time check: the default one depends on whether an optional package happens to be
# installed, and a verdict must not depend on the environment.
_FORMAT_CHECKER: Final = FormatChecker(formats=())


@cache
def _date_time_pattern() -> re.Pattern[str]:
    return re.compile(_load(COMMON)["$defs"]["date-time"]["pattern"])


def _is_calendar_date_time(value: object) -> bool:
    # The pattern (reported by its own keyword) fixes the syntax but cannot know that February has no
    # 30th; the client's fromisoformat does. Leave non-matching strings to the pattern so each bad
    # value is reported once.
    if isinstance(value, str) and _date_time_pattern().search(value):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


_FORMAT_CHECKER.checks("date-time", raises=ValueError)(_is_calendar_date_time)


@cache
def validator(schema_name: str) -> Validator:
    """A Draft 2020-12 validator for one schema file, built once.

    Stricter than a stock ``Draft202012Validator`` in two ways that match the official client:
    ``integer`` excludes ``1.0``, and ``date-time`` values must be real calendar instants.
    """
    if schema_name not in COMPONENTS:
        raise KeyError(f"unknown schema {schema_name!r}; known: {', '.join(SCHEMA_FILES)}")
    return cast(
        Validator,
        _StrictValidator(_validated_contents(schema_name), registry=registry(), format_checker=_FORMAT_CHECKER),
    )


# -------------------------------------------------------------------------------------------- validation


def violations(schema_name: str, instance: object) -> list[Violation]:
    """Every violation of ``schema_name`` by ``instance``, ordered by JSON path; empty when valid."""
    found = [
        _violation(schema_name, leaf)
        for error in validator(schema_name).iter_errors(instance)
        for leaf in _leaves(error)
    ]
    return sorted(found, key=lambda v: (v.json_path, v.schema_path))


def is_valid(schema_name: str, instance: object) -> bool:
    """Whether ``instance`` satisfies ``schema_name``; cheaper than ``violations`` when the reason is not needed."""
    return bool(validator(schema_name).is_valid(instance))


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """Replace an anyOf/oneOf failure by the errors of its closest alternative.

    "is not valid under any of the given schemas" tells a server author nothing. The alternative with
    the fewest errors is the one the document was meant to be (ties go to the earlier alternative,
    the order the official client tries them in), and its errors say what to fix.
    """
    if not error.context:
        yield error
        return
    by_alternative: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        by_alternative.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    _, closest = min(by_alternative.items(), key=lambda item: (len(item[1]), item[0]))
    for sub in closest:
        yield from _leaves(sub)


def _violation(schema_name: str, leaf: ValidationError) -> Violation:
    location, variant, via = _keyword_location(schema_name, leaf.absolute_schema_path)
    message = _describe(leaf, location)
    if variant is not None:
        message += f" [checked as {variant}]" if via == "then" else f" [closest alternative: {variant}]"
    return Violation(json_path=leaf.json_path, message=message, value=leaf.instance, schema_path=location)


def _keyword_location(schema_name: str, segments: Iterable[str | int]) -> tuple[str, str | None, str | None]:
    """Follow jsonschema's schema path (which omits ``$ref`` hops) through the files.

    Returns ``(file#/pointer of the failing keyword, title of the variant a branch selected, branch)``.
    """
    uri = BASE_URI + schema_name
    pointer: list[str] = []
    node: Any = registry().contents(uri)
    variant: str | None = None
    branch: str | None = None
    previous: str | int | None = None
    for segment in segments:
        while isinstance(node, dict) and "$ref" in node and segment not in node:
            uri, pointer, node = _follow(uri, node["$ref"])
        node = _child(node, segment)
        pointer.append(str(segment))
        entered = "then" if segment == "then" else previous if previous in ("anyOf", "oneOf") else None
        if entered is not None:
            branch, variant = entered, _title(uri, node)
        previous = segment
    escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)
    return f"{uri.removeprefix(BASE_URI)}#/{escaped}", variant, branch


def _follow(uri: str, ref: str) -> tuple[str, list[str], Any]:
    """One ``$ref`` hop: (the target document's URI, the pointer inside it, the target schema)."""
    target_uri, fragment = urldefrag(urljoin(uri, ref))
    parts = [p.replace("~1", "/").replace("~0", "~") for p in fragment.split("/")[1:]]
    node: Any = registry().contents(target_uri)
    for part in parts:
        node = _child(node, int(part) if isinstance(node, list) else part)
    return target_uri, parts, node


def _child(node: Any, segment: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(segment)
    if isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
        return node[segment]
    return None


def _title(uri: str, node: Any) -> str | None:
    # A branch usually holds just a $ref to the variant, whose title is the useful name.
    if isinstance(node, dict) and "$ref" in node:
        _, _, node = _follow(uri, node["$ref"])
    title = node.get("title") if isinstance(node, dict) else None
    return title if isinstance(title, str) else None


def _render(value: object, limit: int = 120) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(error: ValidationError, location: str) -> str:
    value, expected = error.instance, error.validator_value
    if error.validator == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"{_render(value)} is not of type {wanted}"
    if error.validator == "enum":
        values = list(expected)
        listed = ", ".join(map(_render, values)) if len(values) <= 12 else f"{len(values)} documented codes"
        return f"{_render(value)} is not one of the documented values ({listed})"
    if error.validator == "const":
        return f"{_render(value)} is not {_render(expected)}"
    if location.startswith(DATE_TIME_LOCATION):
        if error.validator == "pattern":
            return (
                f"{_render(value)} is not an RFC 3339 date-time (needs 'T', upper-case 'Z' or ±hh:mm, "
                "hour 00-23, second 00-59)"
            )
        if error.validator == "format":
            return f"{_render(value)} is not a real calendar date-time"
    return str(error.message)


# ----------------------------------------------------------------------------------------------- reports


def schema_digests() -> dict[str, str]:
    """sha256 of every contract file (the schemas and openapi.json), so a report names what it checked."""
    names = [*SCHEMA_FILES, OPENAPI]
    return {name: hashlib.sha256((schemas_dir() / name).read_bytes()).hexdigest() for name in names}


def openapi_path() -> Path:
    return schemas_dir() / OPENAPI


def openapi_document() -> dict[str, Any]:
    """openapi.json with every schema file inlined under ``components/schemas`` (a fresh copy per call).

    openapi.json references the schema files so they stay the single source of truth, and
    ``schemathesis.openapi.from_path(openapi_path())`` resolves those references from disk. Loaders
    without a file location (``from_dict``, other tools) need this self-contained form instead.
    """
    document = _rewrite_refs(copy.deepcopy(_load(OPENAPI)), BASE_URI + OPENAPI)
    bundled = document.setdefault("components", {}).setdefault("schemas", {})
    for name, component in COMPONENTS.items():
        # $id must go: inside the bundle it would rebase the rewritten "#/components/..." references.
        body = {k: v for k, v in _load(name).items() if k not in ("$id", "$schema")}
        bundled[component] = _rewrite_refs(copy.deepcopy(body), BASE_URI + name)
    return cast(dict[str, Any], document)


def _rewrite_refs(node: Any, base_uri: str) -> Any:
    """Point every ``$ref`` (relative to ``base_uri``) at its place in the bundled document, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                target, fragment = urldefrag(urljoin(base_uri, value))
                name = target.removeprefix(BASE_URI)
                if name == OPENAPI:
                    node[key] = f"#{fragment}"
                elif name in COMPONENTS:
                    node[key] = f"#/components/schemas/{COMPONENTS[name]}{fragment}"
                else:
                    raise ValueError(f"$ref {value!r} (from {base_uri}) leaves the contract's files")
            else:
                _rewrite_refs(value, base_uri)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, base_uri)
    return node
