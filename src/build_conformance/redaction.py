"""Keeps every credential the suite knows out of anything it writes or prints."""

from __future__ import annotations

import threading

# Probe strings shorter than this are never treated as secrets: they would redact ordinary text and
# a match on them would be an accident, not an echo.
MIN_SECRET_LENGTH = 12


class Redactor:
    """Registry of secret strings; `redact` replaces each with a stable label."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, secret: str | None, label: str) -> None:
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._secrets.setdefault(secret, label)

    @property
    def secrets(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._secrets)

    def redact(self, text: str) -> str:
        with self._lock:
            items = sorted(self._secrets.items(), key=lambda kv: -len(kv[0]))
        for secret, label in items:
            if secret in text:
                text = text.replace(secret, f"<{label}>")
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)
