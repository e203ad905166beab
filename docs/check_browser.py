"""Render the built docs in a real headless browser and check that nothing is cut off.

    mkdocs build -d site && python docs/check_browser.py site [--width 1280 --width 1920]
        [--screenshots DIR] [PAGE ...]

Each page is loaded in headless Chromium (Debian's ``chromium``, driven over the DevTools
protocol on a pipe: no extra package) at the given window widths, after layout and fonts, and
a script measures, in the browser's own layout:

- code blocks (``pre > code``) whose text is wider than the block (a line scrolled or cut
  off: the common-mistakes page's error messages, long code comments);
- tables wider than the page's text column (columns behind a scrollbar);
- names (``code``) in a table's first column broken over more than one line;
- a page wider than the window.

Exit status 0 when every page reads in full, 1 otherwise (each problem on one line), 2 when
no browser is found. ``tests/test_docs_browser.py`` runs it on a fresh build (``-m slow``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Pages checked by default (relative to the site root): the ones issue 23 found cut off, and
#: the pages with the widest tables and code.
DEFAULT_PAGES = (
    "index.html",
    "zoo/index.html",
    "guide/mistakes/index.html",
    "getting-started/index.html",
    "guide/cli/index.html",
    "guide/inputs/index.html",
    "guide/your-hospital/index.html",
    "guide/evaluation/index.html",
    "guide/architectures/index.html",
    "guide/augmentation/index.html",
    "guide/explanations/index.html",
    "examples/index.html",
    "reproducing/index.html",
    "limitations/index.html",
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-extensions",
         "--hide-scrollbars", "--remote-debugging-pipe")

#: Runs in the page; returns one line per problem.
MEASURE = r"""
(() => {
  const out = [];
  const where = (el) => {
    const h = el.closest('.md-typeset') ? (() => {
      let n = el; while (n && !/^H[1-6]$/.test(n.tagName)) {
        n = n.previousElementSibling || n.parentElement;
        if (n && n.classList && n.classList.contains('md-content')) return '';
      }
      return n ? n.textContent.replace('¶', '').trim().slice(0, 60) : '';
    })() : '';
    return h ? ` (under "${h}")` : '';
  };
  const text = (el) => el.textContent.replace(/\s+/g, ' ').trim().slice(0, 70);
  for (const code of document.querySelectorAll('.md-content pre > code')) {
    if (code.scrollWidth > code.clientWidth + 1) {
      out.push(`code block cut off: ${code.scrollWidth - code.clientWidth}px hidden` +
               `${where(code.parentElement)}: ${text(code)}`);
    }
  }
  const article = document.querySelector('.md-content__inner');
  const column = article ? article.getBoundingClientRect() : null;
  for (const table of document.querySelectorAll('.md-content table')) {
    const box = table.parentElement;
    const rect = table.getBoundingClientRect();
    if (box.scrollWidth > box.clientWidth + 1 || (column && rect.right > column.right + 1)) {
      const cols = table.rows.length ? table.rows[0].cells.length : 0;
      let shown = 0;
      if (table.rows.length) for (const c of table.rows[0].cells) {
        const r = c.getBoundingClientRect();
        if (r.right <= Math.min(box.getBoundingClientRect().right, column ? column.right : 1e9) + 1) shown++;
      }
      out.push(`table cut off: ${shown} of ${cols} columns visible${where(table)}: ` +
               `${text(table.rows[0] || table)}`);
    }
    for (const code of table.querySelectorAll('td:first-child code')) {
      const lh = parseFloat(getComputedStyle(code).lineHeight) ||
                 1.4 * parseFloat(getComputedStyle(code).fontSize);
      if (code.getClientRects().length > 1 || code.getBoundingClientRect().height > 1.6 * lh) {
        out.push(`name wrapped in a table cell${where(table)}: ${text(code)}`);
      }
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    out.push(`page wider than the window: ${document.documentElement.scrollWidth}px > ` +
             `${window.innerWidth}px`);
  }
  return out;
})()
"""


def find_browser() -> str | None:
    """Path of a Chromium-family browser, or ``None``."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium driven by the DevTools protocol over ``--remote-debugging-pipe``
    (messages are NUL-terminated JSON on file descriptors 3 and 4 of the browser)."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="pneumozoo-browser-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser's ends become its fds 3 and 4 (moved above 9 first, so that neither
        # dup2 overwrites the other); every other fd Python opened is close-on-exec.
        to_browser_r, from_browser_w = (self._high(to_browser_r), self._high(from_browser_w))

        def wire() -> None:  # in the child, before exec
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=wire, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": page["targetId"], "flatten": True})["sessionId"]
        self.call("Page.enable", session=self.session)

    @staticmethod
    def _high(fd: int) -> int:
        import fcntl

        moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return moved

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send one DevTools command and wait for its result (events are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if any(e.get("method") == event for e in self.events):
                self.events = [e for e in self.events if e.get("method") != event]
                return
            self.events.append(self._read_message(deadline))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str, width: int, height: int = 900) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=self.session)
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=self.session)
        self.wait_for("Page.loadEventFired")
        self.evaluate("document.fonts.ready.then(() => true)")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_site(site: str | Path, pages: tuple[str, ...] | list[str] = DEFAULT_PAGES,
               widths: tuple[int, ...] | list[int] = (1280,), screenshots: str | Path | None = None,
               executable: str | None = None) -> list[str]:
    """Problems found on ``pages`` of the built ``site`` at each window width (empty: none).

    Raises:
        FileNotFoundError: If no browser is installed or a page is missing.
    """
    executable = executable or find_browser()
    if executable is None:
        raise FileNotFoundError("no Chromium browser found (apt-get install chromium)")
    site = Path(site).resolve()
    problems: list[str] = []
    with Browser(executable) as browser:
        for page in pages:
            path = site / page
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such page in the built site")
            for width in widths:
                browser.open(path.as_uri(), width)
                for line in browser.evaluate(MEASURE) or []:
                    problems.append(f"{page} at {width}px: {line}")
                if screenshots is not None:
                    folder = Path(screenshots)
                    folder.mkdir(parents=True, exist_ok=True)
                    name = page.replace("/index.html", "").replace("/", "-").replace(".html", "")
                    browser.screenshot(folder / f"{name or 'index'}-{width}.png")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", help="the built site (mkdocs build -d SITE)")
    parser.add_argument("pages", nargs="*", help=f"pages to check (default: {len(DEFAULT_PAGES)})")
    parser.add_argument("--width", type=int, action="append", help="window width (default 1280, 1920)")
    parser.add_argument("--screenshots", default=None, help="write a full-page PNG of each page here")
    args = parser.parse_args(argv)
    try:
        problems = check_site(args.site, args.pages or DEFAULT_PAGES, args.width or (1280, 1920),
                              args.screenshots)
    except FileNotFoundError as e:
        print(f"check_browser: {e}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    print(f"check_browser: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
