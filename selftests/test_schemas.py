"""Self-tests of the contract in schemas/ and of build_conformance.contract.

The official client (nullspace-sdk's generated models) is the oracle wherever it is strict: removing a
key, picking an enum value or a readiness variant must be judged the same way by our schemas and by
the client's ``from_dict``. Where the client is lax (it never type-checks scalars and accepts null
strings), the schemas follow the client's declared contract (schemas/DECISIONS.md) and the tests say so
explicitly.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from nullspace._generated_api.nullspace_openapi_client.models import (
    ErrorResponse,
    ErrorResponseCode,
    TemplateBuildArtifactAvailabilityStatus,
    TemplateBuildBackend,
    TemplateBuildLogEntryCacheKind,
    TemplateBuildLogEntryCacheReason,
    TemplateBuildLogEntryCacheStatus,
    TemplateBuildLogKind,
    TemplateBuildLogLevel,
    TemplateBuildPromotabilityStatus,
    TemplateBuildSourceType,
    TemplateBuildStatus,
    TemplateBuildStatusSnapshot,
    TemplateFailureDetailCode,
    TemplateFailurePhase,
    TemplateVisibility,
)
from schemathesis.core.transport import Response

from build_conformance import contract, resources
from build_conformance.judging.shape import requirement_of

Path_ = tuple[str | int, ...]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = resources.schemas_dir() / "examples"
OPERATION = ("/v1/templates/builds/{build_id}/cancel", "POST")


def load_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def documented() -> dict[str, Any]:
    return load_json(EXAMPLES / "cancel-response.documented.json")


def error_example() -> dict[str, Any]:
    return load_json(EXAMPLES / "error-response.json")


def key_paths(node: object, prefix: Path_ = ()) -> Iterator[Path_]:
    """The path of every object member, at every level (array items are stepped through, not listed)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from key_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from key_paths(item, (*prefix, index))


def object_paths(node: object, prefix: Path_ = ()) -> Iterator[Path_]:
    if isinstance(node, dict):
        yield prefix
        for key, value in node.items():
            yield from object_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from object_paths(item, (*prefix, index))


def json_path(path: Path_) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def with_(doc: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    get(out, path[:-1])[path[-1]] = value
    return out


def without(doc: dict[str, Any], path: Path_) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    del get(out, path[:-1])[path[-1]]
    return out


def sdk_accepts(parse: Callable[[dict[str, Any]], object], doc: dict[str, Any]) -> bool:
    # The generated models surface every contract breach as one of these, unwrapped.
    try:
        parse(doc)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


def sdk_snapshot(doc: dict[str, Any]) -> bool:
    return sdk_accepts(TemplateBuildStatusSnapshot.from_dict, doc)


def sdk_error(doc: dict[str, Any]) -> bool:
    return sdk_accepts(ErrorResponse.from_dict, doc)


def valid(doc: object, schema: str = contract.SNAPSHOT) -> bool:
    return not contract.violations(schema, doc)


# ------------------------------------------------------------------------------------------ the files


def test_every_schema_file_is_registered_under_its_id() -> None:
    on_disk = {p.name for p in resources.schemas_dir().glob("*.schema.json")}
    assert on_disk == set(contract.SCHEMA_FILES) | set(contract.TOOL_SCHEMA_FILES)
    for name in contract.SCHEMA_FILES:
        assert contract.schema(name)["$id"] == contract.BASE_URI + name


@pytest.mark.parametrize("name", contract.SCHEMA_FILES + contract.TOOL_SCHEMA_FILES)
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = contract.schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_no_schema_forbids_extra_fields_or_allows_null() -> None:
    for name in contract.SCHEMA_FILES:
        text = json.dumps(contract.schema(name))
        assert '"additionalProperties": false' not in text, name
        assert '"null"' not in text, name


def test_digests_cover_every_contract_file() -> None:
    digests = contract.schema_digests()
    assert set(digests) == {*contract.SCHEMA_FILES, contract.OPENAPI}
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests.values())


def _fake_checkout(root: Path) -> Path:
    for name in ("schemas", "tests"):
        (root / name).mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    return root


def test_resources_fall_back_to_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = _fake_checkout(tmp_path / "checkout")
    monkeypatch.setattr(resources, "_BUNDLED_DIR", tmp_path / "no-bundle")
    monkeypatch.setattr(resources, "_CHECKOUT_DIR", checkout)
    assert resources.schemas_dir() == checkout / "schemas"
    assert resources.suite_dir() == checkout / "tests"


def test_resources_prefer_the_bundled_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = _fake_checkout(tmp_path / "bundled")
    monkeypatch.setattr(resources, "_BUNDLED_DIR", bundled)
    monkeypatch.setattr(resources, "_CHECKOUT_DIR", _fake_checkout(tmp_path / "checkout"))
    assert resources.schemas_dir() == bundled / "schemas"
    assert resources.suite_dir() == bundled / "tests"


def test_resources_of_this_installation_hold_the_contract_and_the_suite() -> None:
    # Editable or wheel install: whichever copy is used holds the same files as this checkout.
    repo = Path(__file__).resolve().parents[1]
    pairs = ((resources.schemas_dir(), "*.json", "schemas"), (resources.suite_dir(), "test_*.py", "tests"))
    for found, pattern, here in pairs:
        assert {p.name for p in found.glob(pattern)} == {p.name for p in (repo / here).glob(pattern)}


def test_resources_fail_clearly_when_nothing_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "_BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setattr(resources, "_CHECKOUT_DIR", tmp_path)
    with pytest.raises(resources.ResourceNotFoundError, match="cannot find its schemas/ directory"):
        resources.schemas_dir()


# ---------------------------------------------------------------------------------- documented example


def test_documented_example_is_valid_and_parses_in_the_official_client() -> None:
    doc = documented()
    assert contract.violations(contract.SNAPSHOT, doc) == []
    parsed = TemplateBuildStatusSnapshot.from_dict(doc)
    assert parsed.build.status == TemplateBuildStatus.CANCELLED
    assert parsed.entries[0].kind == TemplateBuildLogKind.END


def test_documented_example_only_adds_fields_the_page_left_out() -> None:
    # The completed example must keep the page's rendering verbatim apart from the enum-typed fields.
    added = {
        ("build", "status"),
        ("build", "build_backend"),
        ("build", "source_type"),
        ("build", "visibility"),
        ("build", "artifact_availability", "status"),
        ("build", "promotability", "status"),
        ("build", "error_detail", "code"),
        ("build", "error_detail", "phase"),
        ("entries", 0, "kind"),
        ("entries", 0, "level"),
        ("entries", 0, "error_detail", "code"),
        ("entries", 0, "error_detail", "phase"),
        ("entries", 0, "result", "visibility"),
    }
    page = ROOT.parent / "shared" / "seed" / "cancel-template-build.txt"
    if not page.exists():
        pytest.skip("the seed page is not available outside the development workspace")
    text = page.read_text(encoding="utf-8")
    rendered = json.loads(text[text.index('{\n  "build"') : text.index("\nAuthorizations")])
    doc = documented()
    for path in added:
        doc = without(doc, path)
    assert doc == rendered


def test_error_example_is_valid_and_parses_in_the_official_client() -> None:
    doc = error_example()
    assert contract.violations(contract.ERROR_RESPONSE, doc) == []
    assert ErrorResponse.from_dict(doc).code == ErrorResponseCode.TEMPLATE_BUILD_NOT_FOUND


# What the official client's models require, for the objects the documented example holds.
FAILURE_DETAIL_REQUIRED = {"code", "message", "phase", "retryable", "suggested_action"}
TCP_REQUIRED = {"kind", "port"}
REQUIRED_IN_EXAMPLE: dict[Path_, set[str]] = {
    (): {"build", "entries", "next_offset"},
    ("build",): {
        "build_id",
        "template_id",
        "name",
        "tags",
        "status",
        "build_backend",
        "source_type",
        "canonical_ref",
        "namespace_slug",
        "visibility",
        "created_at",
        "updated_at",
    },
    ("build", "artifact_availability"): {"status"},
    ("build", "promotability"): {"status", "promotable"},
    ("build", "runtime_defaults", "readiness"): TCP_REQUIRED,
    ("build", "oci_metadata", "healthcheck", "mapped_readiness"): TCP_REQUIRED,
    ("build", "error_detail"): FAILURE_DETAIL_REQUIRED,
    ("entries", 0): {"build_id", "template_id", "offset", "timestamp", "kind", "level", "message"},
    ("entries", 0, "error_detail"): FAILURE_DETAIL_REQUIRED,
    ("entries", 0, "result"): {"id", "name", "description", "builtin", "canonical_ref", "namespace_slug", "visibility"},
    ("entries", 0, "result", "runtime_defaults", "readiness"): TCP_REQUIRED,
    ("entries", 0, "result_metadata", "runtime_defaults", "readiness"): TCP_REQUIRED,
    ("entries", 0, "result_metadata", "oci_metadata", "healthcheck", "mapped_readiness"): TCP_REQUIRED,
}
REQUIRED_PATHS = {(*parent, key) for parent, keys in REQUIRED_IN_EXAMPLE.items() for key in keys}
ALL_KEY_PATHS = list(key_paths(documented()))


def test_required_table_matches_the_official_client() -> None:
    rejected = {path for path in ALL_KEY_PATHS if not sdk_snapshot(without(documented(), path))}
    assert rejected == REQUIRED_PATHS


@pytest.mark.parametrize("path", ALL_KEY_PATHS, ids=json_path)
def test_removing_a_key_fails_exactly_when_it_is_required(path: Path_) -> None:
    found = contract.violations(contract.SNAPSHOT, without(documented(), path))
    if path in REQUIRED_PATHS:
        assert [v.keyword for v in found] == ["required"]
        assert found[0].json_path == json_path(path[:-1])
        assert repr(path[-1]) in found[0].message
    else:
        assert found == []


@pytest.mark.parametrize("path", ALL_KEY_PATHS, ids=json_path)
def test_null_fails_wherever_a_key_is_present(path: Path_) -> None:
    found = contract.violations(contract.SNAPSHOT, with_(documented(), path, None))
    assert found, "null must never validate (SHAPE-04)"
    assert {requirement_of(v) for v in found} == {"SHAPE-04"}
    assert all(v.json_path == json_path(path) and v.message.startswith("null ") for v in found)


def test_null_array_items_fail() -> None:
    doc = documented()
    for path in [("build", "tags", 0), ("build", "artifact_ids", 0), ("entries", 0)]:
        found = contract.violations(contract.SNAPSHOT, with_(doc, path, None))
        assert [requirement_of(v) for v in found] == ["SHAPE-04"], path


@pytest.mark.parametrize("path", list(object_paths(documented())), ids=json_path)
def test_extra_fields_pass_at_every_level(path: Path_) -> None:
    doc = copy.deepcopy(documented())
    get(doc, path)["x_undocumented"] = "tolerated"
    assert contract.violations(contract.SNAPSHOT, doc) == []
    assert sdk_snapshot(doc)


def test_extra_fields_of_any_type_pass_outside_open_maps() -> None:
    doc = documented()
    doc["x_top"] = {"deep": [1, None, True]}
    doc["build"]["x_build"] = None
    doc["entries"][0]["x_entry"] = 1.5
    assert valid(doc)


# -------------------------------------------------------------------------------------- enums and types

BAD_VALUES: list[tuple[Path_, object, str]] = [
    (("build", "status"), "canceling", "SHAPE-02"),
    (("build", "status"), "Cancelled", "SHAPE-02"),
    (("build", "build_backend"), "docker", "SHAPE-02"),
    (("build", "source_type"), "git", "SHAPE-02"),
    (("build", "visibility"), "internal", "SHAPE-02"),
    (("build", "artifact_availability", "status"), "gone", "SHAPE-02"),
    (("build", "promotability", "status"), "cancelled", "SHAPE-02"),
    (("build", "error_detail", "code"), "cancelled", "SHAPE-02"),
    (("build", "error_detail", "phase"), "cancel", "SHAPE-02"),
    (("build", "runtime_defaults", "readiness", "kind"), "udp", "SHAPE-02"),
    (("entries", 0, "kind"), "progress", "LOG-01"),
    (("entries", 0, "level"), "warning", "LOG-01"),
    (("entries", 0, "result", "visibility"), "internal", "LOG-04"),
    (("entries", 0, "error_detail", "phase"), "cancel", "LOG-04"),
]


@pytest.mark.parametrize(("path", "value", "requirement"), BAD_VALUES, ids=lambda x: str(x))
def test_undocumented_enum_values_fail_here_and_in_the_client(path: Path_, value: object, requirement: str) -> None:
    doc = with_(documented(), path, value)
    found = contract.violations(contract.SNAPSHOT, doc)
    assert [(v.json_path, v.keyword, requirement_of(v)) for v in found] == [(json_path(path), "enum", requirement)]
    assert json.dumps(value) in str(found[0])
    assert not sdk_snapshot(doc)


def test_optional_entry_enums_and_counters() -> None:
    doc = documented()
    entry = doc["entries"][0]
    entry.update(cache_kind="layer", cache_status="bypass", cache_reason="force_upload", attempt=1, step_index=1)
    assert valid(doc) and sdk_snapshot(doc)
    for key, value in [
        ("cache_status", "partial"),
        ("cache_kind", "blob"),
        ("cache_reason", "skip"),
        ("step_index", 0),
        ("attempt", 0),
        ("total_steps", 1.0),
        ("max_attempts", "3"),
        ("phase", 1),
    ]:
        found = contract.violations(contract.SNAPSHOT, with_(doc, ("entries", 0, key), value))
        assert [requirement_of(v) for v in found] == ["LOG-04"], key


@pytest.mark.parametrize("value", [1.0, True, "1", -1, 2**64, [1], {}])
def test_next_offset_must_be_a_uint64_json_integer(value: object) -> None:
    found = contract.violations(contract.SNAPSHOT, with_(documented(), ("next_offset",), value))
    assert [(v.json_path, requirement_of(v)) for v in found] == [("$.next_offset", "SHAPE-01")]


@pytest.mark.parametrize("value", [0, 1, 2**64 - 1])
def test_next_offset_bounds_are_inclusive(value: int) -> None:
    assert valid(with_(documented(), ("next_offset",), value))


@pytest.mark.parametrize(
    ("path", "value", "requirement"),
    [
        (("entries", 0, "offset"), 1.0, "LOG-01"),
        (("entries", 0, "offset"), -1, "LOG-01"),
        (("entries", 0, "build_id"), 7, "LOG-01"),
        (("build", "duration_ms"), 1.5, "SHAPE-02"),
        (("build", "tags"), "latest", "SHAPE-02"),
        (("build", "tags", 0), 1, "SHAPE-02"),
        (("build", "promotability", "promotable"), "true", "SHAPE-02"),
        (("build", "build_config", "vcpus"), 2.0, "SHAPE-02"),
        (("build", "oci_metadata", "labels"), {"a": 1}, "SHAPE-02"),
    ],
    ids=lambda x: str(x),
)
def test_wrong_types_fail(path: Path_, value: object, requirement: str) -> None:
    found = contract.violations(contract.SNAPSHOT, with_(documented(), path, value))
    assert found and {requirement_of(v) for v in found} == {requirement}


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([], "$"),
        ({}, "$"),
        ({"build": [], "entries": [], "next_offset": 0}, "$.build"),
        ({"build": {}, "entries": {}, "next_offset": 0}, "$.entries"),
    ],
    ids=["array", "empty", "build-not-object", "entries-not-array"],
)
def test_top_level_shape_is_shape_01(doc: object, path: str) -> None:
    found = [v for v in contract.violations(contract.SNAPSHOT, doc) if v.json_path == path]
    assert found and {requirement_of(v) for v in found} == {"SHAPE-01"}


def test_empty_entries_are_valid() -> None:
    assert valid(with_(documented(), ("entries",), []))


def test_labels_are_an_open_map_of_strings() -> None:
    path = ("build", "oci_metadata", "labels")
    assert valid(with_(documented(), path, {"org.opencontainers.image.title": "x", "a b": ""}))
    found = contract.violations(contract.SNAPSHOT, with_(documented(), path, {"org.opencontainers.image.title": None}))
    assert [(v.json_path, requirement_of(v)) for v in found] == [
        ("$.build.oci_metadata.labels['org.opencontainers.image.title']", "SHAPE-04")
    ]


# ------------------------------------------------------------------------------------------- date-times

DATE_TIME_PATHS: list[Path_] = [("build", "created_at"), ("build", "cancel_requested_at"), ("entries", 0, "timestamp")]
BAD_DATE_TIMES = [
    "2023-11-07T05:31:56z",  # lower-case z
    "2023-11-07 05:31:56Z",  # space separator
    "2023-11-07t05:31:56Z",
    "2023-11-07T05:31:60Z",  # leap second: the client's fromisoformat rejects it
    "2023-11-07T24:00:00Z",
    "2023-11-07T05:31:56",  # naive
    "2023-11-07T05:31:56+0000",  # RFC 3339 needs the colon
    "2023-11-07T05:31:56+24:00",
    "2023-11-07T05:31:56.Z",
    "2023-11-07",
    "20231107T053156Z",
    "2023-02-30T05:31:56Z",  # matches the pattern, is no calendar day
    "0000-01-01T00:00:00Z",
    "2023-11-07T05:31:56Z\n",
    "Tue, 07 Nov 2023 05:31:56 GMT",
    "",
    1699335116,
]
GOOD_DATE_TIMES = [
    "2023-11-07T05:31:56Z",
    "2023-11-07T05:31:56.5Z",
    "2023-11-07T05:31:56.123456789+05:30",
    "2023-11-07T05:31:56-00:00",
    "2024-02-29T23:59:59+23:59",
]


@pytest.mark.parametrize("path", DATE_TIME_PATHS, ids=json_path)
@pytest.mark.parametrize("value", BAD_DATE_TIMES, ids=repr)
def test_non_rfc3339_date_times_fail(path: Path_, value: object) -> None:
    found = contract.violations(contract.SNAPSHOT, with_(documented(), path, value))
    # A bad date-time is SHAPE-03 even inside an entry, and even when it is no string at all.
    assert [(v.json_path, requirement_of(v)) for v in found] == [(json_path(path), "SHAPE-03")]
    assert json.dumps(value, ensure_ascii=False) in found[0].message


@pytest.mark.parametrize("value", GOOD_DATE_TIMES)
def test_rfc3339_date_times_pass_here_and_in_the_client(value: str) -> None:
    doc = documented()
    for path in DATE_TIME_PATHS:
        doc = with_(doc, path, value)
    assert valid(doc)
    assert sdk_snapshot(doc)


# ------------------------------------------------------------------------------------ readiness union

PROBES: dict[str, dict[str, Any]] = {
    "tcp": {"kind": "tcp", "port": 3000, "timeout_secs": 30, "interval_ms": 500, "startup_grace_secs": 2},
    "timeout": {"kind": "timeout", "timeout_ms": 20000},
    "http": {"kind": "http", "port": 8080, "path": "/healthz", "interval_ms": 250},
    "command": {"kind": "command", "command": "test -f /ready", "timeout_secs": 5},
}
PROBE_PATHS: list[Path_] = [
    ("build", "runtime_defaults", "readiness"),
    ("build", "oci_metadata", "healthcheck", "mapped_readiness"),
    ("entries", 0, "result", "runtime_defaults", "readiness"),
]


@pytest.mark.parametrize("kind", PROBES)
def test_each_readiness_variant_passes_here_and_in_the_client(kind: str) -> None:
    doc = documented()
    for path in PROBE_PATHS:
        doc = with_(doc, path, PROBES[kind])
    assert valid(doc)
    assert sdk_snapshot(doc)


@pytest.mark.parametrize(
    ("kind", "missing"), [("tcp", "port"), ("timeout", "timeout_ms"), ("http", "path"), ("command", "command")]
)
def test_a_readiness_variant_without_its_required_field_names_the_variant(kind: str, missing: str) -> None:
    probe = {k: v for k, v in PROBES[kind].items() if k != missing}
    doc = with_(documented(), PROBE_PATHS[0], probe)
    found = contract.violations(contract.SNAPSHOT, doc)
    assert [(v.json_path, v.keyword, requirement_of(v)) for v in found] == [
        ("$.build.runtime_defaults.readiness", "required", "SHAPE-02")
    ]
    assert f"'{missing}'" in found[0].message and f'kind "{kind}"' in found[0].message
    assert not sdk_snapshot(doc)


def test_a_readiness_variant_field_of_the_wrong_type_is_reported_at_the_field() -> None:
    doc = with_(documented(), PROBE_PATHS[1], {"kind": "http", "port": "80", "path": "/"})
    found = contract.violations(contract.SNAPSHOT, doc)
    assert [v.json_path for v in found] == ["$.build.oci_metadata.healthcheck.mapped_readiness.port"]
    assert '"80" is not of type integer' in found[0].message


def test_a_readiness_probe_with_an_unknown_kind_fails_once() -> None:
    doc = with_(documented(), PROBE_PATHS[0], {"kind": "udp", "port": 1})
    found = contract.violations(contract.SNAPSHOT, doc)
    assert [v.json_path for v in found] == ["$.build.runtime_defaults.readiness.kind"]
    assert not sdk_snapshot(doc)


# ------------------------------------------------------------------------------------ error responses


def test_error_response_codes_are_exactly_the_client_enum() -> None:
    schema = contract.schema(contract.ERROR_RESPONSE)
    assert schema["properties"]["code"]["enum"] == [c.value for c in ErrorResponseCode]


@pytest.mark.parametrize("code", ["build_not_found", "quota_exceeded", "missing_api_key", "unauthenticated", ""])
def test_error_response_with_an_unknown_code_fails(code: str) -> None:
    doc = {**error_example(), "code": code}
    found = contract.violations(contract.ERROR_RESPONSE, doc)
    assert [(v.json_path, v.keyword) for v in found] == [("$.code", "enum")]
    assert not sdk_error(doc)


@pytest.mark.parametrize("path", list(key_paths(error_example())), ids=json_path)
def test_error_response_null_fails_and_required_keys_are_required(path: Path_) -> None:
    doc = error_example()
    assert contract.violations(contract.ERROR_RESPONSE, with_(doc, path, None))
    removed = without(doc, path)
    assert valid(removed, contract.ERROR_RESPONSE) == (path[0] not in ("error", "code"))
    assert valid(removed, contract.ERROR_RESPONSE) == sdk_error(removed)


def test_error_response_error_detail_variants() -> None:
    template_failure = {
        "code": "build_error",
        "message": "step 2 failed",
        "phase": "build_step",
        "retryable": False,
        "suggested_action": "fix the Dockerfile",
        "details": {"reason": "exit_code", "exit_code": 2},
    }
    upload_failure = {"reason": "upload_expired", "message": "expired", "retryable": True, "part_number": 3}
    for detail in (template_failure, upload_failure):
        doc = {**error_example(), "code": "build_error", "error_detail": detail}
        assert valid(doc, contract.ERROR_RESPONSE) and sdk_error(doc)
    bad = {**error_example(), "error_detail": {**template_failure, "phase": "cancelled"}}
    found = contract.violations(contract.ERROR_RESPONSE, bad)
    assert [v.json_path for v in found] == ["$.error_detail.phase"]
    assert "closest alternative: TemplateFailureDetail" in found[0].message
    assert not sdk_error(bad)


def test_error_response_extra_fields_pass() -> None:
    assert valid({**error_example(), "hint": "retry later", "retryable": True}, contract.ERROR_RESPONSE)


# --------------------------------------------------------------------------------------- request body


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({}, True),
        ({"reason": "no longer needed"}, True),
        ({"reason": "ü" * 1000, "x": [1]}, True),
        ({"reason": None}, False),
        ({"reason": 1}, False),
        ({"reason": ["a"]}, False),
        ([], False),
        ("x", False),
    ],
    ids=repr,
)
def test_cancel_request_body(body: object, ok: bool) -> None:
    assert valid(body, contract.CANCEL_REQUEST) is ok


# ------------------------------------------------------------------------------------------- OpenAPI


def test_openapi_references_every_schema_file_and_copies_none() -> None:
    document = json.loads(contract.openapi_path().read_text(encoding="utf-8"))
    assert document["components"]["schemas"] == {
        component: {"$ref": name} for name, component in contract.COMPONENTS.items()
    }


def test_bundled_openapi_is_self_contained() -> None:
    text = json.dumps(contract.openapi_document())
    assert re.findall(r'"\$ref": "([^"#][^"]*)"', text) == []
    assert '"$id"' not in text
    assert contract.openapi_document() is not contract.openapi_document()


def _loaded_schemas() -> list[Any]:
    return [
        schemathesis.openapi.from_path(contract.openapi_path()),
        schemathesis.openapi.from_dict(contract.openapi_document()),
    ]


@pytest.mark.parametrize("loaded", _loaded_schemas(), ids=["from_path", "from_dict-bundled"])
def test_openapi_loads_in_schemathesis_and_generates_cancel_cases(loaded: Any) -> None:
    loaded.validate()
    labels = [result.ok().label for result in loaded.get_all_operations()]
    assert labels == ["POST /v1/templates/builds/{build_id}/cancel"]
    operation = loaded[OPERATION[0]][OPERATION[1]]

    cases: list[Any] = []

    @settings(max_examples=25, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def collect(case: Any) -> None:
        cases.append(case)

    collect()
    assert cases
    for case in cases:
        assert isinstance(case.path_parameters["build_id"], str)
        if isinstance(case.body, dict | list | str):
            assert valid(case.body, contract.CANCEL_REQUEST)

    prepared = requests.Request("POST", "http://target.invalid/v1/templates/builds/tb_1/cancel").prepare()

    def response(status: int, body: object) -> Response:
        content = json.dumps(body).encode()
        return Response(status, {"content-type": ["application/json"]}, content, prepared, 0.0, True)

    assert operation.is_valid_response(response(200, documented()))
    assert not operation.is_valid_response(response(200, with_(documented(), ("build", "status"), "canceling")))
    assert operation.is_valid_response(response(404, error_example()))
    assert not operation.is_valid_response(response(401, {"error": "no", "code": "missing_api_key"}))


# ---------------------------------------------------------------------- property: schema agrees with SDK

ENUMS: list[tuple[str, type[Enum]]] = [
    (r"\$\.build\.status", TemplateBuildStatus),
    (r"\$\.build\.build_backend", TemplateBuildBackend),
    (r"\$\.build\.source_type", TemplateBuildSourceType),
    (r".*\.visibility", TemplateVisibility),
    (r"\$\.build\.artifact_availability\.status", TemplateBuildArtifactAvailabilityStatus),
    (r"\$\.build\.promotability\.status", TemplateBuildPromotabilityStatus),
    (r".*\.error_detail\.code", TemplateFailureDetailCode),
    (r".*\.error_detail\.phase", TemplateFailurePhase),
    (r"\$\.entries\[0\]\.kind", TemplateBuildLogKind),
    (r"\$\.entries\[0\]\.level", TemplateBuildLogLevel),
    (r"\$\.entries\[0\]\.cache_kind", TemplateBuildLogEntryCacheKind),
    (r"\$\.entries\[0\]\.cache_status", TemplateBuildLogEntryCacheStatus),
    (r"\$\.entries\[0\]\.cache_reason", TemplateBuildLogEntryCacheReason),
]


def _rich_example() -> dict[str, Any]:
    doc = documented()
    doc["entries"][0].update(cache_kind="layer", cache_status="hit", cache_reason="force_upload")
    return doc


@st.composite
def variations(draw: st.DrawFn) -> dict[str, Any]:
    """The documented example with any keys removed, any enum values and readiness variants swapped."""
    doc = _rich_example()
    for path in PROBE_PATHS:
        probe = copy.deepcopy(PROBES[draw(st.sampled_from(sorted(PROBES)))])
        doc = with_(doc, path, probe)
    for path in list(key_paths(doc)):
        for pattern, enum in ENUMS:
            if re.fullmatch(pattern, json_path(path)):
                doc = with_(doc, path, draw(st.sampled_from([e.value for e in enum])))
    paths = list(key_paths(doc))
    # Deepest first, so removing a parent never invalidates a path drawn below it.
    for path in sorted(draw(st.sets(st.sampled_from(paths), max_size=8)), key=len, reverse=True):
        doc = without(doc, path)
    return doc


@settings(max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variations())
def test_schema_and_official_client_agree_on_variations(doc: dict[str, Any]) -> None:
    assert valid(doc) == sdk_snapshot(doc), contract.violations(contract.SNAPSHOT, doc)


@settings(max_examples=100, database=None, deadline=None)
@given(st.data())
def test_documents_the_schema_accepts_parse_in_the_official_client(data: st.DataObject) -> None:
    doc = _rich_example()
    optional = sorted(set(key_paths(doc)) - REQUIRED_PATHS, key=json_path)
    # Deepest first, so removing a parent never leaves a drawn child path dangling.
    for path in sorted(data.draw(st.sets(st.sampled_from(optional))), key=len, reverse=True):
        doc = without(doc, path)
    assert valid(doc)
    assert sdk_snapshot(doc)
