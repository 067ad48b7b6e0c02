"""Keeps every credential the suite knows out of anything it writes or prints.

Two layers. A credential is a `Secret` from the moment it is read (flag, environment, file): its
repr, str and format show a label, never the value, so a traceback, a fixture repr or a log line
cannot print it by accident; `reveal()` is called only where the value goes on the wire. And
`REDACTOR` knows every credential of the run: everything written or printed passes through it.
"""

from __future__ import annotations

import hmac
import threading
from typing import Any, NoReturn

# Probe strings shorter than this are never treated as secrets: they would redact ordinary text and
# a match on them would be an accident, not an echo.
MIN_SECRET_LENGTH = 12


class Secret:
    """A credential. Only `reveal()` gives the value; every other way of showing it shows the label."""

    __slots__ = ("_label", "_value")

    def __init__(self, value: str, label: str = "secret") -> None:
        self._value = value
        self._label = label

    def reveal(self) -> str:
        """The value itself: for the request that carries it, nothing else."""
        return self._value

    @property
    def label(self) -> str:
        return self._label

    def __repr__(self) -> str:
        return f"<{self._label}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> NoReturn:
        # Pickling would write the value somewhere (a cache, a worker's stdin): hand over `reveal()` explicitly.
        raise TypeError("a Secret is not pickled; pass reveal() where the value must travel")

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __copy__(self) -> Secret:
        return self


class Redactor:
    """Registry of secret strings; `redact` replaces each with a stable label."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, secret: str | Secret | None, label: str) -> None:
        if isinstance(secret, Secret):
            secret = secret.reveal()
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
