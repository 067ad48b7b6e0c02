"""Through the public API against limits of 3 and 5 running builds per tenant (limit 1 and no limit:
`test_public_api_runs.py`, whose check this is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftests.test_public_api_runs import check_any_concurrency_limit


@pytest.mark.parametrize("limit", [3, 5], ids=["limit-3", "limit-5"])
def test_any_concurrency_limit(limit: int, tmp_path: Path) -> None:
    check_any_concurrency_limit(limit, tmp_path)
