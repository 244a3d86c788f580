"""The report in a real browser: headless Chromium loads an archived HTML report and says what a reader
would find broken (an image that does not load, a link to nothing, a table cell whose text spills out
of it or a table wider than the page) and saves a screenshot of the page beside it.

Chromium is driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages
separated by NUL on file descriptors 3 and 4), so no port is opened and no package beyond the Debian
``chromium`` is needed. Every wait is bounded; the browser runs with a fresh profile in a temporary
folder and is stopped by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

VIEWPORT = (1280, 900)  # a laptop screen, CSS pixels
# the questions, the target and the first scenarios; a whole report is up to 40,000 px and 5 MB of PNG
MAX_SCREENSHOT_HEIGHT = 16000

# Runs in the page after it loaded: opens every <details> (a reader may), measures, closes them again.
_INSPECT = """(() => {
  const closed = [...document.querySelectorAll('details:not([open])')];
  closed.forEach(d => d.open = true);
  const tol = 1;  // px of sub-pixel rounding
  const text = el => (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 80);
  const tables = [...document.querySelectorAll('table')];
  const where = el => `table ${tables.indexOf(el.closest('table')) + 1}` +
    (el.closest('tr') ? ` row ${el.closest('tr').rowIndex + 1}` : '');
  const images = [...document.images].map(img => ({src: img.getAttribute('src') || '',
    ok: img.complete && img.naturalWidth > 0}));
  const links = [...document.querySelectorAll('a[href]')].map(a => ({href: a.getAttribute('href'), url: a.href,
    local: a.getAttribute('href').startsWith('#')
      ? !!document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1))) : null}));
  const overflows = [];
  for (const cell of document.querySelectorAll('td, th')) {
    if (cell.scrollWidth > cell.clientWidth + tol)
      overflows.push(`${where(cell)}: a ${cell.tagName.toLowerCase()} holds ${cell.scrollWidth} px of content ` +
                     `in ${cell.clientWidth} px: "${text(cell)}"`);
  }
  for (const table of document.querySelectorAll('table')) {
    const box = table.parentElement, style = getComputedStyle(box), r = box.getBoundingClientRect();
    const left = r.left + parseFloat(style.borderLeftWidth) + parseFloat(style.paddingLeft);
    const right = r.right - parseFloat(style.borderRightWidth) - parseFloat(style.paddingRight);
    const t = table.getBoundingClientRect();
    if (t.right > right + tol || t.left < left - tol)
      overflows.push(`${where(table)}: the table spans ${Math.round(t.width)} px in a ` +
                     `${box.tagName.toLowerCase()} of ${Math.round(right - left)} px: "${text(table).slice(0, 40)}"`);
  }
  const page = document.documentElement;
  if (page.scrollWidth > page.clientWidth + tol) {  // name the innermost elements whose content spills
    const spill = [...document.body.querySelectorAll('*')].filter(
      el => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + tol);
    const culprits = spill.filter(el => !spill.some(other => other !== el && el.contains(other)));
    overflows.push(`the page is ${page.scrollWidth} px wide in a ${page.clientWidth} px window` + culprits.map(el =>
      `; a ${el.tagName.toLowerCase()} holds ${el.scrollWidth} px in ${el.clientWidth} px: "${text(el)}"`).join(''));
  }
  closed.forEach(d => d.open = false);  // the screenshot shows the page as a reader first sees it
  return {images, links, overflows, width: page.scrollWidth, height: page.scrollHeight};
})()"""


@dataclass
class BrowserCheck:
    """What a reader of one report would find broken; empty lists mean the page is whole."""

    html_path: Path
    screenshot: Path
    broken_images: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    overflows: list[str] = field(default_factory=list)
    images: int = 0
    links: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.broken_images or self.broken_links or self.overflows)

    def problems(self) -> list[str]:
        return ([f"image does not load: {i}" for i in self.broken_images]
                + [f"link leads nowhere: {link}" for link in self.broken_links]
                + [f"overflow: {o}" for o in self.overflows])


class BrowserError(RuntimeError):
    """Chromium is missing, did not answer in time, or refused a command."""


def find_chromium() -> str | None:
    """Debian's ``chromium`` on PATH (bin/bootstrap installs it), or None."""
    return shutil.which("chromium")


class _DevTools:
    """A DevTools protocol session over Chromium's debugging pipe, one command at a time."""

    def __init__(self, send_fd: int, receive_fd: int, log: Path):
        self._send, self._receive, self._log = send_fd, receive_fd, log
        self._buffer = bytearray()
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        end = self._buffer.find(b"\0")
        while end < 0:  # a screenshot arrives as megabytes in 64 KiB reads: scan only what is new
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._receive], [], [], left)[0]:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._receive, 1 << 20)
            if not chunk:
                tail = self._log.read_text(errors="replace")[-2000:] if self._log.is_file() else ""
                raise BrowserError(f"Chromium closed its debugging pipe; its last words: {tail}")
            start = len(self._buffer)
            self._buffer += chunk
            end = self._buffer.find(b"\0", start)
        raw = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout_s: float = 30.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._send, json.dumps(message).encode() + b"\0")
        except BrokenPipeError as e:
            raise BrowserError(f"{method}: Chromium is gone") from e
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._message(deadline)
            if reply.get("id") != self._next_id:
                self._events.append(reply)
                continue
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error'].get('message')}")
            return reply.get("result", {})

    def wait_event(self, method: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self._events:
                if event.get("method") == method:
                    self._events.remove(event)
                    return event
            self._events.append(self._message(deadline))


def _wait(pid: int, timeout_s: float) -> bool:
    """Reap pid within timeout_s; True when it exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _chromium(executable: str, startup_s: float = 30.0) -> Iterator[_DevTools]:
    """Chromium, headless, with a throwaway profile; stopped by its PID (and its process group) on exit."""
    profile = Path(tempfile.mkdtemp(prefix="k6suite-chromium-"))
    # pipe ends Chromium gets are moved to fd >= 5 first, so placing them at 3 and 4 never overwrites one
    command_r, command_w = os.pipe()
    reply_r, reply_w = os.pipe()
    child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (command_r, reply_w))
    for fd in (command_r, reply_w):
        os.close(fd)
    args = [executable, "--headless", "--remote-debugging-pipe", f"--user-data-dir={profile / 'user-data'}",
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
    log = profile / "chromium.log"
    pid = os.posix_spawn(executable, args, os.environ, setsid=True, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2), (os.POSIX_SPAWN_DUP2, child_r, 3), (os.POSIX_SPAWN_DUP2, child_w, 4)])
    os.close(child_r)
    os.close(child_w)
    devtools = _DevTools(command_w, reply_r, log)
    try:
        devtools.call("Browser.getVersion", timeout_s=startup_s)
        yield devtools
    finally:
        with contextlib.suppress(BrowserError, OSError):
            devtools.call("Browser.close", timeout_s=5)
        if not _wait(pid, 5):
            os.killpg(pid, signal.SIGKILL)  # its own group: renderer and GPU helpers go too
            _wait(pid, 5)
        os.close(command_w)
        os.close(reply_r)
        shutil.rmtree(profile, ignore_errors=True)


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


def _ids(path: Path, known: dict[Path, set[str]]) -> set[str]:
    """The ids in an HTML file, parsed once per check (a matrix links each system's report hundreds of times)."""
    if path not in known:
        parser = _Ids()
        parser.feed(path.read_text(errors="replace"))
        known[path] = parser.ids
    return known[path]


def _broken_link(href: str, url: str, local: bool | None, archive: Path, known: dict[Path, set[str]]) -> str | None:
    """Why a link leads nowhere, or None: it must stay in the archive, at a file that exists and, with
    a fragment, at an id that file has."""
    if local is not None:
        return None if local else f"{href} (no element has this id)"
    parts = urlsplit(url)
    if parts.scheme != "file":
        return f"{href} (leaves the archive)"
    target = Path(unquote(parts.path)).resolve()
    if not target.is_relative_to(archive):
        return f"{href} (outside the archive)"
    if not target.is_file():
        return f"{href} (no such file)"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target, known):
        return f"{href} (the file has no element with this id)"
    return None


def check_report(html_path: Path, screenshot_path: Path, timeout_s: float = 60.0) -> BrowserCheck:
    """Load html_path in headless Chromium, judge its images, links and tables, save a full-page PNG.

    Links are judged against the archive: the folder html_path is in. Raises BrowserError when
    Chromium is missing or does not answer within timeout_s.
    """
    started = time.monotonic()
    executable = find_chromium()
    if executable is None:
        raise BrowserError("no Chromium on PATH: bin/bootstrap installs the Debian package 'chromium'")
    html_path = Path(html_path).resolve()
    archive = html_path.parent
    with _chromium(executable) as devtools:
        target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = devtools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        devtools.call("Page.enable", session=session)
        devtools.call("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                             "deviceScaleFactor": 1, "mobile": False}, session=session)
        navigated = devtools.call("Page.navigate", {"url": html_path.as_uri()}, session=session)
        if navigated.get("errorText"):
            raise BrowserError(f"{html_path}: {navigated['errorText']}")
        devtools.wait_event("Page.loadEventFired", timeout_s)  # images included: load waits for them
        found = devtools.call("Runtime.evaluate", {"expression": _INSPECT, "returnByValue": True},
                              session=session, timeout_s=timeout_s)["result"]["value"]
        height = min(found["height"], MAX_SCREENSHOT_HEIGHT)
        shot = devtools.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": max(found["width"], VIEWPORT[0]), "height": height, "scale": 1}},
            session=session, timeout_s=timeout_s)
    screenshot_path.parent.mkdir(parents=True, exist_ok=True)
    screenshot_path.write_bytes(base64.b64decode(shot["data"]))
    known: dict[Path, set[str]] = {}
    return BrowserCheck(
        html_path=html_path, screenshot=screenshot_path,
        broken_images=[image["src"] for image in found["images"] if not image["ok"]],
        broken_links=[why for link in found["links"]
                      if (why := _broken_link(link["href"], link["url"], link["local"], archive, known))],
        overflows=found["overflows"], images=len(found["images"]), links=len(found["links"]),
        seconds=round(time.monotonic() - started, 2))
