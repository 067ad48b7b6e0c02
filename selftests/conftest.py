"""The project's own tests, longest files first.

`pytest -n N --dist loadfile` hands whole files to workers in collection order. Alphabetically the files
that run whole suites for minutes (the selfcheck, the public-API limits, production mode, the redaction
matrix) come late and would start after the quick ones, leaving one worker busy long after the others are
done. Starting the longest first (the classic longest-processing-time-first order) keeps every worker
busy until near the end. The weights are measured wall times in seconds (`--durations`), roughly.
"""

from __future__ import annotations

import pytest

LONGEST_FIRST = {
    "test_mutation_score.py": 450,
    "test_public_api_runs.py": 230,
    "test_public_api_more_limits.py": 190,
    "test_production_mode.py": 220,
    "test_redaction_end_to_end.py": 185,
    "test_alt_public_api.py": 120,
    "test_redaction_output.py": 120,
    "test_concurrent_verdicts.py": 100,
    "test_evidence.py": 95,
    "test_https.py": 75,
    "test_alt_server.py": 60,
    "test_deployment_runs.py": 45,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: -LONGEST_FIRST.get(item.path.name, 0))  # stable: each file keeps its order
