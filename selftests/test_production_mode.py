"""The alternative server in production mode (selftests/alt_server/, `production_seed=`).

A real deployment answers through a production stack: compressed and chunked bodies, closed
connections, transient 503/429, undocumented fields everywhere, cancellations that take seconds,
JSend envelopes and wordy messages. The catalogue calls all of that legitimate, so the suite must
find no violation there. The direct tests pin the production behaviours themselves; the last test
runs the whole suite against ten seeds and prints the table (seed, verdict, counts, wall time, plan).
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alt_server import ENCODERS, EXTRA_NAMES, ID_SYNTAX, TRAITS, WORDY, AltServer, Production, start_alt_server
from test_alt_server import NoResults, run_suite

ROOT = Path(__file__).resolve().parents[1]
SEEDS = tuple(range(1, 11))
RUN_TIMEOUT = 300.0  # one seed's suite run; a run that takes longer is a row that says so
# The second server answers four suites at once from one Python process, on a machine that also runs the
# rest of the selftests: a 10 s stall there is the test machine's, not a production behaviour. GEN-02 is
# proven against hanging faults by the selfcheck.
REQUEST_TIMEOUT = "30"
TRANSIENT = (429, 503)
DECODERS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.decompress, "deflate": zlib.decompress}
if "br" in ENCODERS:
    import brotli

    DECODERS["br"] = brotli.decompress
if "zstd" in ENCODERS:
    import zstandard

    DECODERS["zstd"] = lambda data: zstandard.ZstdDecompressor().decompress(data)


@pytest.fixture
def servers() -> Iterator[Callable[..., AltServer]]:
    """Start alternative servers (`start_alt_server` keywords); every one is stopped afterwards."""
    started: list[AltServer] = []

    def start(**options: Any) -> AltServer:
        started.append(start_alt_server(**options))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def _seed_where(condition: Callable[[Production], bool], traits: tuple[str, ...]) -> int:
    """The first seed whose plan satisfies `condition` (plans are pure functions of the seed)."""
    return next(seed for seed in range(1, 10_000) if condition(Production(seed, traits)))


def _owner(server: AltServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.tokens[0]}"}


def _until_answered(send: Callable[[], httpx.Response], attempts: int = 5) -> httpx.Response:
    """What a client that retries 503/429 gets (the server never sends three in a row)."""
    for _ in range(attempts):
        response = send()
        if response.status_code not in TRANSIENT:
            return response
    raise AssertionError(f"still {response.status_code} after {attempts} attempts")


def _create(client: httpx.Client, server: AltServer, status: str) -> str:
    response = _until_answered(lambda: client.post(f"{server.control_url}/builds", json={"status": status},
                                                   headers=_owner(server)))
    assert response.status_code == 200, response.text
    return str(response.json()["build_id"])


def _observe(client: httpx.Client, server: AltServer, build_id: str) -> dict[str, Any]:
    response = _until_answered(lambda: client.get(f"{server.control_url}/builds/{build_id}", headers=_owner(server)))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _cancel_url(server: AltServer, build_id: str) -> str:
    return f"{server.base_url}/v1/templates/builds/{build_id}/cancel"


def _objects(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in `node`, with its path."""
    if isinstance(node, dict):
        yield path, node
        for name, value in node.items():
            yield from _objects(value, f"{path}/{name}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _objects(item, f"{path}/{index}")


# ------------------------------------------------------------------------------------- the behaviours


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_compressed_response_decodes(servers: Callable[..., AltServer], encoding: str) -> None:
    seed = _seed_where(lambda p: encoding in p.encodings and p.compress_threshold < 400, ("compression",))
    server = servers(production_seed=seed, production_traits=("compression",))
    with httpx.Client(timeout=10) as client:
        build_id = _create(client, server, "ready")
    split = urlsplit(server.control_url)
    connection = http.client.HTTPConnection(split.netloc, timeout=10)
    seen: set[str | None] = set()
    try:
        for _ in range(40):  # a seeded share (at least half) of the large-enough responses is compressed
            connection.request("GET", f"{split.path}/builds/{build_id}",
                               headers={**_owner(server), "Accept-Encoding": encoding})
            response = connection.getresponse()
            raw = response.read()
            used = response.getheader("Content-Encoding")
            seen.add(used)
            body = DECODERS[encoding](raw) if used else raw
            assert used in (encoding, None)
            assert json.loads(body)["build"]["build_id"] == build_id
            if used:
                assert response.getheader("Vary") == "Accept-Encoding"
                assert int(response.getheader("Content-Length") or len(raw)) == len(raw)
        assert encoding in seen
        connection.request("GET", f"{split.path}/builds/{build_id}",
                           headers={**_owner(server), "Accept-Encoding": f"{encoding};q=0, identity"})
        refused = connection.getresponse()
        assert refused.getheader("Content-Encoding") is None and json.loads(refused.read())
    finally:
        connection.close()


def test_transient_answer_has_no_side_effect(servers: Callable[..., AltServer]) -> None:
    server = servers(production_seed=3, production_traits=("transient-errors",))
    transients: list[httpx.Response] = []
    with httpx.Client(timeout=10) as client:
        for _ in range(400):
            build_id = _create(client, server, "waiting")
            before = _observe(client, server, build_id)
            answer = client.post(_cancel_url(server, build_id), json={"reason": "maybe"}, headers=_owner(server))
            if answer.status_code in TRANSIENT:
                transients.append(answer)
                after = _observe(client, server, build_id)
                assert after == before, f"a {answer.status_code} changed the build"
            if len(transients) >= 5:
                break
        assert len(transients) >= 5
        for answer in transients:
            assert answer.json()["code"] in ("capacity_exceeded", "rate_limit_exceeded")
            assert answer.headers.get("retry-after", "0") in ("0", "1")
            if answer.status_code == 429:
                assert "retry-after" in answer.headers
        # The same request never meets a third transient answer in a row, so a retrying client gets through.
        in_a_row, longest = 0, 0
        for _ in range(300):
            status = client.post(_cancel_url(server, "no-such-build"), headers=_owner(server)).status_code
            in_a_row = in_a_row + 1 if status in TRANSIENT else 0
            longest = max(longest, in_a_row)
        assert 1 <= longest <= 2


def test_progress_entries_while_a_cancel_is_pending(servers: Callable[..., AltServer]) -> None:
    server = servers(production_seed=5, production_traits=("slow-cancel",))
    with httpx.Client(timeout=10) as client:
        build_id = _create(client, server, "building")
        first = client.post(_cancel_url(server, build_id), json={"reason": "stop"}, headers=_owner(server)).json()
        requested = first["build"]
        assert requested["status"] == "building" and requested["cancel_requested_at"]
        repeat = client.post(_cancel_url(server, build_id), json={"reason": "other"}, headers=_owner(server)).json()
        assert repeat["build"]["cancel_requested_at"] == requested["cancel_requested_at"]
        assert repeat["build"]["cancellation_reason"] == "stop"
        updates, snapshot = {requested["updated_at"]}, first
        deadline = time.monotonic() + 10
        while snapshot["build"]["status"] == "building" and time.monotonic() < deadline:
            snapshot = _observe(client, server, build_id)
            updates.add(snapshot["build"]["updated_at"])
        build, entries = snapshot["build"], snapshot["entries"]
        assert build["status"] == "cancelled", "the pending cancellation never completed"
        progress = [e for e in entries[len(first["entries"]):] if e["kind"] == "message"]
        assert progress and len(updates) >= 3, (progress, updates)
        assert [e["kind"] for e in entries].count("cancelled") == 1
        assert build["cancel_requested_at"] < build["finished_at"] and build["duration_ms"] > 0
        # The scheduler's step completes another pending cancellation at once.
        other = _create(client, server, "building")
        client.post(_cancel_url(server, other), headers=_owner(server))
        advanced = client.post(f"{server.control_url}/builds/{other}/advance", headers=_owner(server))
        assert advanced.status_code == 200 and advanced.json()["build"]["status"] == "cancelled"


def test_connections_close_and_bodies_come_chunked(servers: Callable[..., AltServer]) -> None:
    server = servers(production_seed=11, production_traits=("connection-close", "chunked"))
    with httpx.Client(timeout=10) as client:
        build_id = _create(client, server, "error")
    split = urlsplit(server.control_url)
    closed = chunked = 0
    for _ in range(60):
        connection = http.client.HTTPConnection(split.netloc, timeout=10)
        try:
            connection.request("GET", f"{split.path}/builds/{build_id}", headers=_owner(server))
            assert connection.sock is not None
            peer = connection.sock.dup()  # our own handle: it stays open after http.client lets go
            response = connection.getresponse()
            assert json.loads(response.read())["build"]["build_id"] == build_id
            chunked += response.getheader("Transfer-Encoding") == "chunked"
            if response.getheader("Connection") == "close":
                closed += 1
                peer.settimeout(5)
                assert peer.recv(1) == b"", "Connection: close, but the server kept the connection open"
            peer.close()
        finally:
            connection.close()
    assert closed and chunked


def test_error_bodies_are_jsend_envelopes_with_wordy_messages(servers: Callable[..., AltServer]) -> None:
    seed = _seed_where(lambda p: p.jsend_share == 1.0, ("jsend-errors", "wordy-errors"))
    server = servers(production_seed=seed, production_traits=("jsend-errors", "wordy-errors"))
    with httpx.Client(timeout=10) as client:
        anonymous = client.post(_cancel_url(server, "some-build"))
        unknown = client.post(_cancel_url(server, "some-build"), headers=_owner(server))
        method = client.get(_cancel_url(server, "some-build"), headers=_owner(server))
    for answer, status, code in ((anonymous, 401, "unauthorized"), (unknown, 404, "not_found"),
                                 (method, 405, "invalid_request")):
        body = answer.json()
        assert answer.status_code == status and body["status"] == "error" and body["code"] == code
        assert body["request_id"] == answer.headers["x-request-id"]
    assert method.headers["allow"] == "POST"
    sql_words = re.compile(r"\b(?:select|update|delete|from|where|set)\b")
    for variants in WORDY.values():
        assert all(len(sql_words.findall(v)) >= 2 for v in variants), variants


def test_extra_fields_everywhere_but_error_detail(servers: Callable[..., AltServer]) -> None:
    documented = set()
    for schema in (ROOT / "schemas").glob("*.schema.json"):
        if schema.name not in ("config.schema.json", "results.schema.json"):
            documented |= {name for _, node in _objects(json.loads(schema.read_text())) for name in
                           node.get("properties", {}) if isinstance(node.get("properties"), dict)}
    assert not documented & set(EXTRA_NAMES), "an extra field would shadow a documented one"
    server = servers(production_seed=2, production_traits=("extra-fields",))
    with httpx.Client(timeout=10) as client:
        snapshot = _observe(client, server, _create(client, server, "error"))
        again = _observe(client, server, snapshot["build"]["build_id"])
        rejected = client.post(_cancel_url(server, "x"), headers={"Authorization": "Bearer nope"}).json()
    assert again == snapshot, "the extra fields of a build move between reads"
    for body in (snapshot, rejected):
        for path, node in _objects(body):
            inside_error_detail = "error_detail" in path
            assert bool(set(node) & set(EXTRA_NAMES)) != inside_error_detail, f"extra fields at {path or '/'}"
        assert "null" not in json.dumps(body)


def test_id_shapes_vary_by_seed(servers: Callable[..., AltServer]) -> None:
    shapes = {shape for seed in SEEDS for shape in Production(seed).id_shapes}
    assert len(shapes) >= 3, shapes
    for seed in (1, 4):
        server = servers(production_seed=seed, production_traits=("id-shapes",))
        with httpx.Client(timeout=10) as client:
            for _ in range(5):
                build_id = _create(client, server, "waiting")
                assert ID_SYNTAX.fullmatch(build_id) and build_id not in (".", "..")
                assert client.post(_cancel_url(server, build_id), headers=_owner(server)).status_code == 200


def _fingerprint(server: AltServer) -> list[tuple[Any, ...]]:
    """What a fixed sequence of requests got: statuses, framing, encodings and the bodies' structure."""
    seen = []
    with httpx.Client(timeout=10) as client:
        for status in ("waiting", "building", "ready", "error"):
            created = client.post(f"{server.control_url}/builds", json={"status": status}, headers=_owner(server))
            seen.append(created)
            if created.status_code == 200:
                seen.append(client.post(_cancel_url(server, created.json()["build_id"]), headers=_owner(server)))
        seen.append(client.post(_cancel_url(server, "nobody"), headers={"Authorization": "Bearer wrong"}))
    return [(r.status_code, *(r.headers.get(h) for h in ("content-encoding", "transfer-encoding", "connection",
                                                           "retry-after", "x-request-id")),
             sorted(path for path, _ in _objects(r.json())), r.json().get("build", {}).get("build_id"))
            for r in seen]


def test_production_mode_is_reproducible_for_a_seed(servers: Callable[..., AltServer]) -> None:
    first, second, other = (_fingerprint(servers(production_seed=seed)) for seed in (7, 7, 8))
    assert first == second
    assert first != other
    with pytest.raises(ValueError, match="unknown production traits"):
        Production(7, ("compression", "gremlins"))
    assert set(Production(7).traits) == set(TRAITS)


# --------------------------------------------------------------------------- the suite on ten seeds


@dataclass(frozen=True)
class SeedRun:
    seed: int
    verdict: str
    counts: dict[str, int]
    seconds: float
    plan: str
    offenders: list[str]

    @property
    def clean(self) -> bool:
        return self.verdict == "conformant" and not self.offenders


def _run_seed(seed: int, traits: tuple[str, ...] | None, report_dir: Path, timeout: float,
              *extra: str) -> SeedRun:
    """One row of the table; a run that left no results is a row too (the other seeds still count)."""
    server = start_alt_server(production_seed=seed, production_traits=traits)
    plan = server.production.describe() if server.production else ""
    started = time.monotonic()
    try:
        run = run_suite(server, report_dir, "--seed", str(seed), *extra, timeout=timeout)
    except NoResults as exc:
        first_line = str(exc).splitlines()[0]
        return SeedRun(seed, "no results", dict.fromkeys(("passed", "failed", "error", "not-run"), 0),
                       time.monotonic() - started, plan, [first_line, *str(exc).splitlines()[-5:]])
    finally:
        server.stop()
    counts = run.counts()
    return SeedRun(seed, run.results["verdict"], {s: counts[s] for s in ("passed", "failed", "error", "not-run")},
                   run.seconds, plan, run.offenders(("failed", "error", "not-run")))


def _table(rows: list[SeedRun]) -> str:
    lines = ["| seed | verdict | passed | failed | error | not-run | wall s | plan |", "|---" * 8 + "|"]
    lines += [f"| {r.seed} | {r.verdict} | {r.counts['passed']} | {r.counts['failed']} | {r.counts['error']} | "
              f"{r.counts['not-run']} | {r.seconds:.0f} | {r.plan} |" for r in rows]
    details = [f"\nseed {r.seed}:\n" + "\n".join(f"  {line}" for line in r.offenders) for r in rows if r.offenders]
    return "\n".join(lines) + "\n" + "".join(details)


def _listed(name: str) -> list[str] | None:
    value = os.environ.get(name, "").strip()
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def test_ten_seeds_of_production_mode_are_conformant(tmp_path: Path) -> None:
    """Ten seeds, every trait on, the quick profile, four runs at a time: each run mostly waits on
    seconds-long cancellations and retried transients, so four share two CPUs well.

    The same table for other seeds, traits or profiles: BUILD_CONFORMANCE_PRODUCTION_SEEDS=1,2,...,
    BUILD_CONFORMANCE_PRODUCTION_TRAITS=compression,..., BUILD_CONFORMANCE_PRODUCTION_PROFILE=standard,
    BUILD_CONFORMANCE_PRODUCTION_JOBS=N (then `pytest selftests/test_production_mode.py -k ten_seeds -s`)."""
    seeds = [int(s, 0) for s in _listed("BUILD_CONFORMANCE_PRODUCTION_SEEDS") or map(str, SEEDS)]
    traits = _listed("BUILD_CONFORMANCE_PRODUCTION_TRAITS")
    profile = os.environ.get("BUILD_CONFORMANCE_PRODUCTION_PROFILE", "quick")
    jobs = int(os.environ.get("BUILD_CONFORMANCE_PRODUCTION_JOBS", "4"))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(lambda seed: _run_seed(seed, tuple(traits) if traits else None,
                                                    tmp_path / f"seed-{seed}", RUN_TIMEOUT, "--profile", profile,
                                                    "--request-timeout", REQUEST_TIMEOUT),
                             seeds))
    table = f"profile {profile}\n" + _table(rows)
    (tmp_path / "production-mode.md").write_text(table, encoding="utf-8")
    print(f"\n{table}\n(written to {tmp_path / 'production-mode.md'})")
    assert all(row.clean for row in rows), table
