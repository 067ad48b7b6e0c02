#!/usr/bin/env python3
"""Render a report.html with headless Chromium and save a PNG, to check what people will see.

    python3 scripts/screenshot_report.py reports/report.html --out /tmp/report.png [--expand]

--expand renders a copy with every requirement's <details> open, so the evidence panels show in the picture.
Chromium runs with networking switched off (background services disabled, every host resolved to
nowhere); with --net-log FILE it also records its network log, which selftests read to prove the
report made no request beyond its own file.

Exit 0 with the PNG written; 2 when Chromium is missing or fails (the message says which).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def find_chromium() -> str | None:
    """$CHROMIUM if set, else the first Chromium on PATH, else /usr/bin/chromium if present."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def expanded_copy(html_path: Path, directory: Path) -> Path:
    """A copy of the report with every requirement's <details> open (the report itself stays closed).

    Nested panels (the list of tests, the ledger) stay closed: they are long and say little.
    """
    text = html_path.read_text(encoding="utf-8")
    text = re.sub(r'<details class="req ', '<details open="open" class="req ', text)
    copy = directory / html_path.name
    copy.write_text(text, encoding="utf-8")
    return copy


def screenshot(
    html_path: Path,
    out: Path,
    *,
    width: int = 1400,
    height: int = 2000,
    expand: bool = False,
    net_log: Path | None = None,
    timeout: float = 120.0,
) -> Path:
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found (install the Debian package 'chromium' or set $CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="bc-shot-") as scratch:
        page = expanded_copy(html_path, Path(scratch)) if expand else html_path.resolve()
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--hide-scrollbars",
            # Nothing the page could name is reachable, so a stray reference cannot leak or hang.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={Path(scratch) / 'profile'}",
            f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}",
        ]
        if net_log is not None:
            command.append(f"--log-net-log={net_log.resolve()}")
        command.append(page.as_uri())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if not out.is_file() or not out.read_bytes().startswith(PNG_SIGNATURE):
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"chromium exited {run.returncode} without a PNG: {' | '.join(tail)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("html", type=Path, help="report.html to render")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--expand", action="store_true", help="open every <details> before rendering")
    parser.add_argument("--net-log", type=Path, default=None, help="also write Chromium's network log here")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"screenshot_report: {args.html}: no such file", file=sys.stderr)
        return 2
    try:
        path = screenshot(
            args.html, args.out, width=args.width, height=args.height, expand=args.expand, net_log=args.net_log
        )
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"screenshot_report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
