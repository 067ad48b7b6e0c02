"""Work inside one conformance test, several at once: independent probes, and properties split in parts.

Both keep a run reproducible: a property's examples are split into a fixed number of parts, each with
its own seed derived from the run's seed, whatever the concurrency; the concurrency only decides how
many parts (or probes) are in flight at once. Each piece runs in a copy of the test's context, so what
it sends and records is the test's, as its k-th piece (`attribution.PIECE`), one after another or at once:
the recorder orders observations by piece, so the evidence shown first is the same either way.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from build_conformance.attribution import piece_context

T = TypeVar("T")
R = TypeVar("R")

# How many parts a property's examples are split into (whatever the concurrency).
PROPERTY_PARTS = 4
# At most this many pieces of one test at once: tests themselves already run several at once.
PER_TEST = 4
# Threads that run property parts, kept for the whole run: Hypothesis registers a random generator the first
# time it runs in a thread, and that registration collects the garbage of the whole process and scans every
# object (about 0.1 s each), so fresh threads for every property would pay it again and again.
PART_THREADS = 64
_PART_PREFIX = "conformance-part"
_part_pool: ThreadPoolExecutor | None = None
_part_lock = threading.Lock()


def part_seed(seed: int, label: str, part: int) -> int:
    """The seed of one part of a property: stable for a run's seed, distinct per property and part."""
    digest = hashlib.sha256(f"{seed}:{label}:{part}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def each(fn: Callable[[T], R], items: Iterable[T], *, workers: int) -> list[R]:
    """`fn` over `items`, up to `workers` at once; results in the items' order. Every item runs even when
    one raises (its observations count), at once or one after another alike; then the first exception is
    raised, or a group of them."""
    pieces = list(items)
    if workers <= 1 or len(pieces) <= 1:
        results: list[R] = []
        errors: list[Exception] = []
        for index, piece in enumerate(pieces):
            try:
                results.append(piece_context(index).run(fn, piece))
            except Exception as raised:  # anything else (an interruption, a skip) stops here
                errors.append(raised)
        _raise(errors)
        return results
    with ThreadPoolExecutor(max_workers=min(workers, PER_TEST, len(pieces))) as pool:
        futures = [pool.submit(piece_context(index).run, fn, piece) for index, piece in enumerate(pieces)]
        errors = []
        for future in futures:
            error = future.exception()
            if isinstance(error, Exception):
                errors.append(error)
            elif error is not None:
                raise error  # an interruption: no grouping
        _raise(errors)
        return [f.result() for f in futures]


def _raise(errors: list[Exception]) -> None:
    if errors:
        raise errors[0] if len(errors) == 1 else ExceptionGroup("several pieces of the test failed", errors)


def run_all(parts: Sequence[Callable[[], None]], *, workers: int) -> None:
    """Run every part (up to `workers` at once, on the run's long-lived part threads); raise as `each` does."""
    pieces = list(parts)
    lanes = min(workers, PER_TEST, len(pieces))
    if lanes <= 1 or threading.current_thread().name.startswith(_PART_PREFIX):
        each(lambda part: part(), pieces, workers=workers)  # one at a time, or nested: no shared threads
        return
    global _part_pool
    with _part_lock:
        if _part_pool is None:
            _part_pool = ThreadPoolExecutor(max_workers=PART_THREADS, thread_name_prefix=_PART_PREFIX)
        pool = _part_pool
    # `lanes` tasks on the shared threads, each taking the next part until none is left (in order).
    contexts = [piece_context(index) for index in range(len(pieces))]  # the caller's: each part is its piece
    errors: list[BaseException | None] = [None] * len(pieces)
    queue = iter(range(len(pieces)))
    taking = threading.Lock()
    interrupted = threading.Event()

    def lane() -> None:
        while not interrupted.is_set():
            with taking:
                index = next(queue, None)
            if index is None:
                return
            try:
                contexts[index].run(pieces[index])
            except BaseException as raised:  # every part runs; the first error is raised below
                errors[index] = raised
                if not isinstance(raised, Exception):
                    interrupted.set()  # an interruption: no further parts

    for future in [pool.submit(lane) for _ in range(lanes)]:
        future.result()
    interruption = next((e for e in errors if e is not None and not isinstance(e, Exception)), None)
    if interruption is not None:
        raise interruption  # an interruption: no grouping
    _raise([e for e in errors if isinstance(e, Exception)])
