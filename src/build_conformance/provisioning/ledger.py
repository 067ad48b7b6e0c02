"""Every build this run created: so nothing else is ever touched, and the report lists them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from build_conformance.provisioning.protocol import ProvisionedBuild


@dataclass
class Ledger:
    """Every build this run created, so nothing else is ever touched and the report lists them."""

    builds: list[ProvisionedBuild] = field(default_factory=list)
    # Builds whose cancel (as their owner, through the endpoint under test) was answered 200: nothing to clean up.
    cancelled: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, build: ProvisionedBuild) -> None:
        with self._lock:
            self.builds.append(build)

    def cancel_accepted(self, build_id: str) -> None:
        with self._lock:
            self.cancelled.add(build_id)

    def still_to_clean(self, builds: list[ProvisionedBuild]) -> list[ProvisionedBuild]:
        """The builds whose cancel the run did not see accepted (the others end on their own)."""
        with self._lock:
            return [b for b in builds if b.build_id not in self.cancelled]

    def owns(self, build_id: str) -> bool:
        with self._lock:
            return any(b.build_id == build_id for b in self.builds)

    def as_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"build_id": b.build_id, "tenant": b.tenant, "status": b.status,
                     **({"made_by": b.made_by} if b.made_by else {})} for b in self.builds]
