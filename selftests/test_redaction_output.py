"""The redacting output layer (harness/redacted_output.py): line buffering, streams patched in place,
pytest's reports scrubbed, and `install` in a real pytest process under every capture mode."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from build_conformance.harness import redacted_output
from build_conformance.harness.redacted_output import LineRedactor, RedactingStream, protect, scrub_report
from build_conformance.redaction import FRAGMENT_LENGTH, Redactor

ROOT = Path(__file__).resolve().parents[1]
ALPHABET = "GHJKLMNPQRSTUVWXYZghjkmnpqrstuvwxyz"


def canary(tenant: str = "A") -> str:
    return f"TOKEN-{tenant}-canary-" + "".join(secrets.choice(ALPHABET) for _ in range(24))


def leaked(text: str, *values: str) -> list[str]:
    return sorted({v[i : i + FRAGMENT_LENGTH] for v in values for i in range(len(v) - FRAGMENT_LENGTH + 1)} & {
        text[i : i + FRAGMENT_LENGTH] for i in range(len(text) - FRAGMENT_LENGTH + 1)})


@pytest.fixture
def token() -> str:
    return canary()


@pytest.fixture
def redactor(token: str) -> Redactor:
    redactor = Redactor()
    redactor.add_token(token, "token-a")
    return redactor


class Sink:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1

    @property
    def text(self) -> str:
        return "".join(self.writes)


def test_a_token_split_over_writes_is_caught_at_any_split(redactor: Redactor, token: str) -> None:
    line = f"Authorization: Bearer {token} (sent)\n"
    for first in range(len(line)):
        for second in range(first, len(line), 7):
            sink = Sink()
            layer = LineRedactor(sink.write, sink.flush, redactor)
            for part in (line[:first], line[first:second], line[second:]):
                assert layer.write(part) == len(part)
            assert sink.text == "Authorization: Bearer <token-a> (sent)\n"


def test_partial_lines_are_held_until_newline_or_flush(redactor: Redactor, token: str) -> None:
    sink = Sink()
    layer = LineRedactor(sink.write, sink.flush, redactor)
    layer.write("progress ...")
    assert sink.text == ""
    layer.flush()  # pytest flushes its progress dots: they show at once
    assert sink.text == "progress ..." and sink.flushes == 1
    layer.write(f"{token[:10]}")
    layer.write(f"{token[10:]} done\nnext")
    assert sink.text == "progress ...<token-a> done\n"
    layer.drain()
    assert sink.text.endswith("\nnext") and sink.flushes == 1
    layer.writelines([f"a {token}\n", "b\n"])
    assert sink.text.endswith("a <token-a>\nb\n")


def test_nothing_is_held_while_no_secret_is_known() -> None:
    sink = Sink()
    layer = LineRedactor(sink.write, sink.flush, Redactor())
    layer.write("collecting ... ")
    assert sink.text == "collecting ... "


def test_an_endless_line_is_written_out_in_redacted_chunks(redactor: Redactor, token: str) -> None:
    sink = Sink()
    layer = LineRedactor(sink.write, sink.flush, redactor)
    for _ in range(redacted_output.MAX_PENDING // len(token) * 3):
        layer.write(token)
    assert sink.text and leaked(sink.text, token) == []
    layer.flush()
    assert set(sink.text.replace("<token-a>", "").replace("<token-a…>", "")) <= set(token)


def test_an_ascii_only_stream_gets_the_label_escaped(redactor: Redactor, token: str) -> None:
    sink = Sink()

    def ascii_write(text: str) -> int:
        text.encode("ascii")
        return sink.write(text)

    layer = LineRedactor(ascii_write, sink.flush, redactor)
    layer.write(f"cut {token[:12]}\n")
    assert sink.text == "cut <token-a\\u2026>\n"


def test_protect_patches_a_file_stream_in_place(tmp_path: Path, redactor: Redactor, token: str) -> None:
    with open(tmp_path / "out.txt", "w", encoding="utf-8") as stream:
        same = protect(stream, redactor)
        assert same is stream and redacted_output.is_protected(stream)
        assert protect(stream, redactor) is stream  # once only
        held_elsewhere = stream  # e.g. pytest's terminal writer, or capture's saved stream
        print(f"print {token[:15]}", end="", file=held_elsewhere)
        held_elsewhere.write(f"{token[15:]}!\n")
        stream.writelines([f"{token[3:20]}\n"])
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "print <token-a>!\n<token-a…>\n"


def test_a_stream_that_cannot_be_patched_gets_a_stand_in(redactor: Redactor, token: str) -> None:
    class Slotted:
        __slots__ = ("buffer",)

        def __init__(self) -> None:
            self.buffer = io.StringIO()

        def write(self, text: str) -> int:
            return self.buffer.write(text)

        def flush(self) -> None:
            pass

    stream = Slotted()
    stand_in = protect(stream, redactor)
    assert isinstance(stand_in, RedactingStream) and stand_in is not stream
    stand_in.write(f"{token}\n")
    assert stream.buffer.getvalue() == "<token-a>\n"
    assert stand_in.buffer is stream.buffer  # everything else is the stream's


def _report_with_locals(token: str) -> Any:
    def send() -> None:
        headers = [("Authorization", f"Bearer {token}"), ("X-Request", "x" * 300)]  # saferepr cuts this repr
        raise RuntimeError(f"refused {headers[0][1][:20]}")

    try:
        send()
    except RuntimeError as exc:
        excinfo = pytest.ExceptionInfo.from_exception(exc)
    longrepr = excinfo.getrepr(showlocals=True, style="long", truncate_locals=True)
    return pytest.TestReport(
        "test_x.py::test_send", ("test_x.py", 1, "test_send"), {}, "failed", longrepr, "call",
        sections=[("Captured stdout call", f"sent {token}\n")], user_properties=[("token", token)],
    )


def test_reports_are_scrubbed_in_place(redactor: Redactor, token: str) -> None:
    report = _report_with_locals(token)
    before = str(report.longrepr)
    assert token[:20] in before and "headers" in before
    scrub_report(report, redactor)
    text = str(report.longrepr)
    assert leaked(text, token) == [] and "<token-a" in text and "headers" in text
    assert report.sections == [("Captured stdout call", "sent <token-a>\n")]
    assert report.user_properties == [("token", "<token-a>")]
    assert leaked(repr(report._to_json()), token) == []  # what an xdist worker sends to the controller


CONFTEST = """
import atexit, logging, sys, warnings
import pytest
from build_conformance.harness import redacted_output
from build_conformance.redaction import REDACTOR

TOKEN = {token!r}

def pytest_configure(config):
    redacted_output.install(config)  # as the plugin does, before the terminal reporter exists

def pytest_sessionstart(session):
    REDACTOR.add_token(TOKEN, "token-a")  # as open_run does, once the run starts

def pytest_sessionfinish(session):
    sys.stdout.write("finish " + TOKEN[:9]); sys.stdout.write(TOKEN[9:] + "\\n")
    sys.stderr.write("stderr " + TOKEN + "\\n")

def at_exit():
    logging.getLogger("x").error("log %s", TOKEN)  # no handler left: logging's last resort, sys.stderr
    print("at exit, no newline " + TOKEN, end="")

def pytest_unconfigure(config):
    atexit.register(at_exit)
"""

TESTS = """
import logging, warnings

from conftest import TOKEN

def test_fails():
    headers = [("Authorization", "Bearer " + TOKEN), ("Padding", "p" * 300)]
    print("captured " + TOKEN)
    logging.getLogger("t").warning("logged %s", TOKEN)
    warnings.warn("warned " + TOKEN)
    assert headers[0][1] == TOKEN

def test_passes():
    print("passing " + TOKEN)
    warnings.warn(UserWarning("also " + TOKEN[4:30]))
"""


@pytest.mark.parametrize("capture", ["fd", "sys", "no", "tee-sys"])
def test_install_in_a_pytest_process(tmp_path: Path, token: str, capture: str) -> None:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(token=token)), encoding="utf-8")
    (tmp_path / "test_leaky.py").write_text(TESTS, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--capture={capture}", "-l", "--tb=long",
         "--full-trace", "-rA", "-vv", "--junitxml=junit.xml", "-o", "junit_logging=all", "test_leaky.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed, 1 passed" in output and "<token-a>" in output
    assert "finish <token-a>" in result.stdout and "stderr <token-a>" in result.stderr
    assert "log <token-a>" in result.stderr
    assert result.stdout.endswith("at exit, no newline <token-a>")  # held back, then written out at exit
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr),
                       ("junit.xml", (tmp_path / "junit.xml").read_text(encoding="utf-8"))):
        assert leaked(text, token) == [], name
