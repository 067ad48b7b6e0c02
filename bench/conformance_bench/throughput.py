"""The reference server's cancel throughput under concurrent keep-alive load, beside a minimal server."""

from __future__ import annotations

import threading
import time
from typing import Any

from .servers import CountingServer


def load_test(kind: str, threads: int, per_thread: int, seconds: float, body_bytes: int = 0) -> dict[str, Any]:
    """N client threads (one httpx keep-alive client each) sending cancels; bounded in count and time."""
    import httpx

    with CountingServer(kind, body_bytes=body_bytes) as server:
        targets: list[str] = []
        headers: dict[str, str] = {}
        if kind == "reference":
            token = server.tokens[0]
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(headers=headers) as client:
                for _ in range(threads):
                    created = client.post(f"{server.control_url}/builds", json={"status": "building"})
                    created.raise_for_status()
                    targets.append(f"{server.api_url}/v1/templates/builds/{created.json()['build_id']}/cancel")
        else:
            targets = [f"{server.api_url}/v1/templates/builds/b{i}/cancel" for i in range(threads)]
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors = [0] * threads
        deadline = time.monotonic() + seconds
        barrier = threading.Barrier(threads + 1)

        def worker(index: int) -> None:
            with httpx.Client(headers=headers, timeout=10.0) as client:
                client.post(targets[index], json={"reason": "load test"})  # connect, first (effective) cancel
                barrier.wait()
                for _ in range(per_thread):
                    if time.monotonic() > deadline:
                        break
                    started = time.perf_counter()
                    try:
                        ok = client.post(targets[index], json={"reason": "load test"}).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    latencies[index].append(time.perf_counter() - started)
                    errors[index] += 0 if ok else 1

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        barrier.wait()
        before = server.stats()
        started = time.perf_counter()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - started
        after = server.stats()
    flat = sorted(x for per in latencies for x in per)
    done = len(flat)

    def pct(q: float) -> float:
        return round(1000 * flat[min(done - 1, int(q * done))], 2) if done else 0.0

    served = after["requests"] - before["requests"]
    cpu = after["cpu_s"] - before["cpu_s"]
    return {"server": kind, "threads": threads, "requests": done, "errors": sum(errors),
            "elapsed_s": round(elapsed, 2), "rps": round(done / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            # Server CPU per request and share of one core: near 1 core the server is the bottleneck,
            # well below it the load generator (one Python process) is.
            "server_cpu_ms_per_request": round(1000 * cpu / served, 3) if served else None,
            "server_cores_busy": round(cpu / elapsed, 2) if elapsed > 0 else None}


def reference_body_bytes() -> int:
    """Size of a cancel response of the reference server, so the ceiling server sends as many bytes."""
    import httpx

    with CountingServer("reference") as server, httpx.Client(
        headers={"Authorization": f"Bearer {server.tokens[0]}"}
    ) as client:
        build_id = client.post(f"{server.control_url}/builds", json={"status": "building"}).json()["build_id"]
        return len(client.post(f"{server.api_url}/v1/templates/builds/{build_id}/cancel").content)
