"""Keeps every credential the suite knows out of anything it writes or prints.

Two layers. A credential is a `Secret` from the moment it is read (flag, environment, file): its
repr, str and format show a label, never the value, so a traceback, a fixture repr or a log line
cannot print it by accident; `reveal()` is called only where the value goes on the wire. And
`REDACTOR` knows every credential of the run: everything written or printed passes through it
(`harness/redacted_output.py` puts the terminal, stdout and stderr behind it).

The redactor knows two kinds of secrets:

- the run's *tokens* (`add_token`, or `add` with a `Secret`): the whole token, the encodings in
  which the suite sends it (percent-encoded, and the Basic-auth base64 of ``token:`` and
  ``:token``), and every run of `FRAGMENT_LENGTH` or more consecutive characters of any of these is
  replaced, by ``<label>`` when whole and ``<label…>`` when a piece. A piece matters: pytest's
  `saferepr` cuts long reprs in the middle, and whatever survives the cut must not show.
- throwaway probe credentials (`add` with a plain string): replaced when whole.
"""

from __future__ import annotations

import base64
import hmac
import threading
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

# Probe strings shorter than this are never treated as secrets: they would redact ordinary text and
# a match on them would be an accident, not an echo.
MIN_SECRET_LENGTH = 12
# Any run of this many consecutive characters of a token (or of an encoding of it) is redacted.
FRAGMENT_LENGTH = 8
# Fragments are found by looking up the Q-gram at every STRIDE-th position of the text: any run of
# FRAGMENT_LENGTH characters contains one such aligned Q-gram entirely (STRIDE + Q - 1 <= FRAGMENT_LENGTH),
# so a run is never skipped, and only the places where a Q-gram of a token occurs are examined further.
_QGRAM = 4
_STRIDE = FRAGMENT_LENGTH - _QGRAM + 1


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


def token_encodings(token: str) -> dict[str, str]:
    """The forms in which the suite itself sends a token, other than the token: name -> encoded value."""
    forms = {
        "url": quote(token, safe=""),
        "basic-user": base64.b64encode(f"{token}:".encode()).decode("ascii"),
        "basic-password": base64.b64encode(f":{token}".encode()).decode("ascii"),
    }
    return {name: form for name, form in forms.items() if form != token}


@dataclass(frozen=True)
class _Index:
    """An immutable snapshot of what the redactor knows; replaced as a whole when a secret is added."""

    whole: tuple[tuple[str, str], ...] = ()  # (secret, replacement), longest first
    fragments: dict[str, str] = field(default_factory=dict)  # each FRAGMENT_LENGTH-gram of a token -> label
    qgrams: frozenset[str] = frozenset()  # each _QGRAM-gram of a token

    @property
    def empty(self) -> bool:
        return not self.whole


def _redact_fragments(text: str, index: _Index) -> str:
    grams, qgrams = index.fragments, index.qgrams
    n = len(text)
    if n < FRAGMENT_LENGTH:
        return text
    # Every window of FRAGMENT_LENGTH characters that is a piece of a token, in order of its start. The
    # candidate starts for the aligned Q-gram at `a` are a+Q-K..a; those of two aligned positions do not
    # overlap, so each window is found once and the list is sorted.
    windows: list[tuple[int, str]] = []
    last_start = n - FRAGMENT_LENGTH
    for a in range(0, n - _QGRAM + 1, _STRIDE):
        if text[a : a + _QGRAM] not in qgrams:
            continue
        for start in range(max(0, a + _QGRAM - FRAGMENT_LENGTH), min(a, last_start) + 1):
            label = grams.get(text[start : start + FRAGMENT_LENGTH])
            if label is not None:
                windows.append((start, label))
    if not windows:
        return text
    parts: list[str] = []
    done = 0
    span_start, span_end, span_label = windows[0][0], windows[0][0] + FRAGMENT_LENGTH, windows[0][1]
    for start, label in windows[1:]:
        if start <= span_end:  # overlapping or touching windows: one run
            span_end = max(span_end, start + FRAGMENT_LENGTH)
            continue
        parts += [text[done:span_start], f"<{span_label}…>"]
        done = span_end
        span_start, span_end, span_label = start, start + FRAGMENT_LENGTH, label
    parts += [text[done:span_start], f"<{span_label}…>", text[span_end:]]
    return "".join(parts)


class Redactor:
    """Registry of secret strings; `redact` replaces each (and each piece of a token) with a stable label.

    Thread-safe: additions build a new snapshot under a lock; `redact` reads the current snapshot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}  # what was registered: secret -> label (first label wins)
        self._whole: dict[str, str] = {}  # secret or derived encoding -> replacement label
        self._fragment_sources: dict[str, str] = {}  # token or encoding of it -> label of its pieces
        self._index = _Index()

    def add(self, secret: str | Secret | None, label: str) -> None:
        """Register a credential. A `Secret` is one of the run's tokens (see `add_token`); a plain string
        is a throwaway (a probe credential), replaced only when whole and only from MIN_SECRET_LENGTH on."""
        if isinstance(secret, Secret):
            self.add_token(secret, label)
            return
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret in self._secrets:
                return
            self._secrets[secret] = label
            self._whole.setdefault(secret, label)
            self._rebuild()

    def add_token(self, token: str | Secret | None, label: str) -> None:
        """Register one of the run's tokens: it, its encodings and every piece of FRAGMENT_LENGTH characters
        of either are redacted. A token shorter than FRAGMENT_LENGTH is ignored (it would redact ordinary text)."""
        if isinstance(token, Secret):
            token = token.reveal()
        if not token or len(token) < FRAGMENT_LENGTH:
            return
        with self._lock:
            if token in self._fragment_sources:
                return
            self._secrets.setdefault(token, label)
            self._whole[token] = label  # a token's label wins over a probe label given to the same string
            self._fragment_sources[token] = label
            for name, form in token_encodings(token).items():
                derived = f"{label}:{name}"
                self._whole.setdefault(form, derived)
                self._fragment_sources.setdefault(form, derived)
            self._rebuild()

    def _rebuild(self) -> None:
        whole = tuple(sorted(((s, f"<{lbl}>") for s, lbl in self._whole.items()), key=lambda kv: -len(kv[0])))
        fragments: dict[str, str] = {}
        qgrams: set[str] = set()
        for source, label in self._fragment_sources.items():
            for i in range(len(source) - FRAGMENT_LENGTH + 1):
                fragments.setdefault(source[i : i + FRAGMENT_LENGTH], label)
            qgrams.update(source[i : i + _QGRAM] for i in range(len(source) - _QGRAM + 1))
        self._index = _Index(whole, fragments, frozenset(qgrams))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credentials registered (tokens and probe credentials), not their derived encodings."""
        with self._lock:
            return tuple(self._secrets)

    @property
    def empty(self) -> bool:
        return self._index.empty

    def redact(self, text: str) -> str:
        index = self._index  # one snapshot for the whole call
        if index.empty or not text:
            return text
        for secret, replacement in index.whole:
            if secret in text:
                text = text.replace(secret, replacement)
        if index.fragments:
            text = _redact_fragments(text, index)
        return text


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)
