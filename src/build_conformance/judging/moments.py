"""The moments a build is cancelled at: its age and what happened to it before, and how the suite reaches each.

A build cancelled moments after it was provisioned meets a server's freshest, simplest code path; real
builds are cancelled after seconds or minutes, after they were read (caches), after requests that were
refused (state left behind by a refusal), while other tenants' requests are served (anything shared
between requests), after the scheduler started them (executor hand-offs). `tests/test_histories.py`
cancels a waiting and a building build after each history and judges the cancel as any cancel is
judged (STATE-01/02, BODY-02, STATE-05..08, LOG-03); results.json (`coverage.histories`) says which
histories the run reached, at which age, and why any was not.
"""

from __future__ import annotations

from dataclasses import dataclass

# How old an "aged" build is when it is cancelled: a few seconds reach the paths a server takes for a build
# that is no longer fresh (parked by an idle executor, evicted from a cache), and stay well within a run: the
# histories of a test run side by side, so the wait overlaps the others. The quick profile waits less (its wait
# is the longest chain of a quick run); a settle timeout shorter than this shortens it (never below a second):
# the run's own bound on how long anything may take.
AGE_SECONDS = 5.0
AGE_SECONDS_BY_PROFILE = {"quick": 2.5, "standard": AGE_SECONDS, "certify": AGE_SECONDS}
MIN_AGE_SECONDS = 1.0
READS_BEFORE_CANCEL = 12  # observations of a build before it is cancelled ("after reads"), as a client that polls


def age_for(settle_timeout: float, profile: str = "standard") -> float:
    """How long the aged history waits under `profile`, bounded by the run's settle timeout."""
    return max(MIN_AGE_SECONDS, min(AGE_SECONDS_BY_PROFILE.get(profile, AGE_SECONDS), settle_timeout))


@dataclass(frozen=True)
class History:
    name: str  # as results.json `coverage.histories` lists it
    title: str
    before: str  # what the suite does to the build before its owner's cancel
    needs: str = ""  # a capability the history needs beyond create and observe


HISTORIES: dict[str, History] = {history.name: history for history in (
    History("fresh", "fresh", "nothing: cancelled as soon as it was made (never taken from a pool of builds made "
            "ahead)"),
    History("aged", "aged", f"left alone for {AGE_SECONDS:g} s ({AGE_SECONDS_BY_PROFILE['quick']:g} s with the quick "
            "profile; at most the settle timeout): a control-API build held still that long, a real build (public "
            "API) running that long, nothing asked about it meanwhile"),
    History("after-reads", "after reads", f"read {READS_BEFORE_CANCEL} times through the provisioner (control API, or "
            "the public status read)"),
    History("after-rejections", "after refused requests", "refused requests first: no credentials (401), the other "
            "tenant's cancel carrying a reason (404), malformed JSON and a reason of the wrong type (400/415/422), a "
            "text/plain body (415/400); the build must be unchanged by them, else the history is not reached"),
    History("after-advance", "started by the scheduler", "a waiting build started by the scheduler (control API "
            "advance), then cancelled while building", needs="advance"),
    History("interleaved", "amid the other tenant's traffic", "cancelled while the other tenant's requests are served "
            "at the same moment: its own build cancelled with its own reason, cancels of ids that name nothing; the "
            "other tenant's build is judged too"),
)}
