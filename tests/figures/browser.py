"""Open an HTML file in headless Chromium and probe it through the DevTools protocol.

The protocol runs over a pipe (``--remote-debugging-pipe``: Chromium reads NUL-terminated JSON
commands on fd 3 and writes replies and events on fd 4), so no port is opened and no websocket
client is needed. Used by ``test_browser.py``; :func:`find_chromium` returns ``None`` when no
browser is installed, and the test then skips.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["FLAGS", "PROBE", "SCREENSHOTS", "BrowserReport", "find_chromium", "inspect_page"]

#: Where the browser check wrote its screenshots (set by the ``screenshot_dir`` fixture and
#: printed by the terminal summary of ``tests/figures/conftest.py``).
SCREENSHOTS = pytest.StashKey[Path]()

#: Flags of a quiet, self-contained headless run (no network services, no first-run UI).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)

#: Runs in the page after load: opens collapsed ``<details>``, decodes every image and measures
#: every ``.math`` element (inline SVG or MathML from the report's maths typesetting).
PROBE = """
(async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const imgs = Array.from(document.images);
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  const images = imgs.map((img, k) => ({
    src: (img.getAttribute('src') || '').slice(0, 48),
    decoded: decoded[k],
    width: img.naturalWidth,
    height: img.naturalHeight,
  }));
  const math = Array.from(document.querySelectorAll('.math')).map(el => {
    const r = el.getBoundingClientRect();
    return {tag: el.tagName, text: (el.textContent || '').trim().slice(0, 48),
            width: r.width, height: r.height};
  });
  const first = document.querySelector('img');
  const figureTop = first ? first.getBoundingClientRect().top + window.scrollY : 0;
  return {title: document.title, images, math, figureTop,
          width: document.documentElement.scrollWidth,
          height: document.documentElement.scrollHeight};
})()
"""


def find_chromium() -> str | None:
    """``/usr/bin/chromium`` or ``chromium`` on ``PATH`` (the Debian package), else ``None``."""
    for candidate in ("chromium", "/usr/bin/chromium"):
        path = shutil.which(candidate)
        if path:
            return path
    return None


@dataclass
class BrowserReport:
    """What the page did: console errors, the probe's result and the screenshots written."""

    errors: list[str] = field(default_factory=list)
    probe: dict = field(default_factory=dict)
    screenshots: list[Path] = field(default_factory=list)

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.probe["images"] if not (i["decoded"] and i["width"] > 0)]

    @property
    def unrendered_math(self) -> list[dict]:
        return [m for m in self.probe["math"] if not (m["width"] > 0 and m["height"] > 0)]


class _Pipe:
    """A Chromium process driven over ``--remote-debugging-pipe``."""

    def __init__(self, exe: str, profile: Path, log: Path) -> None:
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # Move every end above fd 10 so that the dup2 onto fds 3 and 4 cannot clobber another.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child, from_child)]
        for fd in (to_child, from_child):
            os.close(fd)
        argv = [exe, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"]
        self.pid = os.posix_spawn(
            exe,
            argv + ["about:blank"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, ends[0], 3),
                (os.POSIX_SPAWN_DUP2, ends[1], 4),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,  # its own process group: teardown ends Chromium and its helpers only
        )
        for fd in ends:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(
        self,
        method: str,
        params: dict | None = None,
        *,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._receive(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        """The first event called ``method`` (already received or still to come)."""
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            ev = self._receive(timeout)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def _receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError(f"no message from Chromium within {timeout:g} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10.0)
        except (OSError, RuntimeError, TimeoutError):
            pass
        for _ in range(50):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for fd in (self._read, self._write):
            os.close(fd)


def _errors(events: list[dict]) -> list[str]:
    out = []
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            out.append(f"console.{p['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            desc = details.get("exception", {}).get("description") or details.get("text")
            out.append(f"uncaught exception: {desc}")
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            entry = p["entry"]
            where = f" ({entry['url']})" if entry.get("url") else ""
            out.append(f"{entry.get('source')}: {entry.get('text')}{where}")
    return out


def inspect_page(
    html: Path,
    shots: Path,
    *,
    exe: str,
    width: int = 1280,
    height: int = 900,
    timeout: float = 120.0,
) -> BrowserReport:
    """Load ``html`` in a fresh headless profile, run :data:`PROBE`, and write two screenshots to
    ``shots``: ``<stem>-top.png`` (the first screen), ``<stem>-figure.png`` (one screen from just
    above the first image) and ``<stem>-full.png`` (the whole page)."""
    shots.mkdir(parents=True, exist_ok=True)
    report = BrowserReport()
    with tempfile.TemporaryDirectory(prefix="dgating-chromium-") as profile:
        browser = _Pipe(exe, Path(profile), shots / f"{html.stem}-chromium.log")
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log"):
                browser.send(f"{domain}.enable", session=session)
            browser.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            browser.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
            browser.wait_event("Page.loadEventFired", timeout=timeout)
            probe = browser.send(
                "Runtime.evaluate",
                {"expression": PROBE, "awaitPromise": True, "returnByValue": True},
                session=session,
                timeout=timeout,
            )
            if "exceptionDetails" in probe:
                raise RuntimeError(f"probe failed: {probe['exceptionDetails']}")
            report.probe = probe["result"]["value"]
            page = report.probe["height"]
            first = max(0.0, min(report.probe["figureTop"] - 80.0, page - height))
            clips = {
                "top": {"x": 0, "y": 0, "width": width, "height": min(height, page)},
                "figure": {"x": 0, "y": first, "width": width, "height": min(height, page)},
                "full": {"x": 0, "y": 0, "width": width, "height": page},
            }
            for name, clip in clips.items():
                shot = browser.send(
                    "Page.captureScreenshot",
                    {"format": "png", "clip": {**clip, "scale": 1}, "captureBeyondViewport": True},
                    session=session,
                    timeout=timeout,
                )
                path = shots / f"{html.stem}-{name}.png"
                path.write_bytes(base64.b64decode(shot["data"]))
                report.screenshots.append(path)
            report.errors = _errors(browser.events)
        finally:
            browser.close()
    return report
