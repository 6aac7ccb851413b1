"""Open a report in headless Chromium and check it the way a reader would see it.

Drives Debian's ``chromium`` over the DevTools protocol (a websocket, via the small
``websocket-client`` package): loads the file, records console errors, uncaught
exceptions and every network request other than the page itself, measures each plot as
rendered and saves a full-page screenshot. Used by the report tests and the benchmark.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Inspect each ``figure.plot`` as the browser laid it out.
_PROBE_JS = """
JSON.stringify({
  title: document.title,
  banner: !!document.getElementById('names-banner'),
  plots: Array.from(document.querySelectorAll('figure.plot')).map(function (f) {
    var s = f.querySelector('svg');
    if (!s) { return {name: f.dataset.plot, width: 0, height: 0, marks: 0, shapes: 0}; }
    var r = s.getBoundingClientRect();
    return {name: f.dataset.plot, width: r.width, height: r.height,
            marks: parseInt(s.getAttribute('data-marks') || '0', 10),
            shapes: s.querySelectorAll('path, rect, use, polyline, polygon, circle').length};
  }),
  absent: Array.from(document.querySelectorAll('p.absent')).map(function (p) { return p.textContent; }),
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  text: document.body.innerText
})
"""


@dataclass
class PageCheck:
    """What the browser saw: errors, requests, plots as rendered, the screenshot."""

    url: str
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    plots: list[dict[str, Any]] = field(default_factory=list)
    absent_notes: list[str] = field(default_factory=list)
    names_banner: bool = False
    text: str = ""
    screenshot: Path | None = None
    load_seconds: float = 0.0
    #: How far the page is wider than the window (px); > 0 means a horizontal scroll bar.
    overflow_px: int = 0

    @property
    def empty_plots(self) -> list[str]:
        """Plots drawn with no data marks or laid out with no size."""
        return [
            p["name"]
            for p in self.plots
            if p["width"] < 50 or p["height"] < 30 or p["marks"] < 1 or p["shapes"] < 5
        ]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _DevTools:
    def __init__(self, ws_url: str, timeout: float):
        import websocket  # websocket-client

        self._timeout = timeout
        self._ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self._ws.recv())
            self.events.append(message)
            if message.get("method") == event:
                return
        raise TimeoutError(f"no {event} within {timeout} s")

    def drain(self, seconds: float) -> None:
        """Collect late events (console messages after load) for a short while."""
        import websocket

        self._ws.settimeout(seconds)
        try:
            while True:
                self.events.append(json.loads(self._ws.recv()))
        except websocket.WebSocketTimeoutException:
            pass
        finally:
            self._ws.settimeout(self._timeout)

    def close(self) -> None:
        self._ws.close()


class Chromium:
    """One headless Chromium for several page checks (start-up is the slow part).

    with Chromium() as browser:
        for page in pages:
            check = browser.check(page, page.with_suffix(".png"))
    """

    def __init__(
        self,
        chromium: str | None = None,
        *,
        window: tuple[int, int] = (1280, 2000),
        timeout: float = 60.0,
    ):
        self.binary = chromium or find_chromium()
        if self.binary is None:
            raise FileNotFoundError("chromium not found (apt-get install chromium)")
        self.window = window
        self.timeout = timeout
        self._profile: tempfile.TemporaryDirectory | None = None
        self._proc: subprocess.Popen | None = None
        self._tools: _DevTools | None = None

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="recapture-chromium-")
        profile = Path(self._profile.name)
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--no-first-run",
                "--mute-audio",
                "--hide-scrollbars",
                f"--window-size={self.window[0]},{self.window[1]}",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the renderers are stopped with it
        )
        try:
            self._tools = _connect(self._proc, profile, self.timeout)
            for domain in ("Runtime", "Log", "Network", "Page"):
                self._tools.call(f"{domain}.enable")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._tools is not None:
            self._tools.close()
            self._tools = None
        if self._proc is not None:
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._signal_group(signal.SIGKILL)  # helpers that outlived the browser
            self._proc = None
        if self._profile is not None:
            # a helper process may still be writing into the profile for a moment
            for _ in range(50):
                try:
                    self._profile.cleanup()
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                shutil.rmtree(self._profile.name, ignore_errors=True)
            self._profile = None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def check(
        self, html_path: str | os.PathLike, screenshot: str | os.PathLike | None = None
    ) -> PageCheck:
        """Load ``html_path`` and report what happened (see :func:`check_page`)."""
        if self._tools is None:
            raise RuntimeError("use Chromium as a context manager")
        url = Path(html_path).resolve().as_uri()
        return _check(self._tools, url, screenshot, self.window, self.timeout)

    def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the page loaded by the last :meth:`check`; return its value
        (JSON-serialisable). Raises on a script error, so a test sees what went wrong."""
        if self._tools is None:
            raise RuntimeError("use Chromium as a context manager")
        result = self._tools.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(
                details.get("exception", {}).get("description") or details.get("text", "error")
            )
        return result.get("result", {}).get("value")

    def screenshot(self, path: str | os.PathLike) -> Path:
        """A full-page screenshot of the page as it is now (after interactions)."""
        if self._tools is None:
            raise RuntimeError("use Chromium as a context manager")
        return _screenshot(self._tools, Path(path), self.window)


def check_page(
    html_path: str | os.PathLike,
    screenshot: str | os.PathLike | None = None,
    *,
    chromium: str | None = None,
    window: tuple[int, int] = (1280, 2000),
    timeout: float = 60.0,
) -> PageCheck:
    """Load ``html_path`` in headless Chromium and report what happened.

    Network requests are every request except the page's own file (``data:`` URLs are
    inline content, not requests). The screenshot covers the whole page.
    """
    with Chromium(chromium, window=window, timeout=timeout) as browser:
        return browser.check(html_path, screenshot)


def _connect(proc: subprocess.Popen, profile: Path, timeout: float) -> _DevTools:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while True:
        if port_file.exists() and len(port_file.read_text().split()) >= 2:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(0.05)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as resp:
        targets = json.load(resp)
    target = next(t for t in targets if t.get("type") == "page")
    return _DevTools(target["webSocketDebuggerUrl"], timeout)


def _screenshot(tools: _DevTools, path: Path, window) -> Path:
    metrics = tools.call("Page.getLayoutMetrics")
    height = min(int(metrics["cssContentSize"]["height"]) + 1, 30000)
    # grow the viewport to the whole page: more reliable than captureBeyondViewport
    tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=window[0],
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    shot = tools.call("Page.captureScreenshot", format="png")
    path.write_bytes(base64.b64decode(shot["data"]))
    tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=window[0],
        height=window[1],
        deviceScaleFactor=1,
        mobile=False,
    )
    return path


def _check(tools: _DevTools, url: str, screenshot, window, timeout) -> PageCheck:
    tools.drain(0.1)
    tools.events.clear()  # nothing of an earlier page counts against this one
    tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=window[0],
        height=window[1],
        deviceScaleFactor=1,
        mobile=False,
    )
    try:
        start = time.perf_counter()
        tools.call("Page.navigate", url=url)
        tools.wait_for("Page.loadEventFired", timeout)
        load_seconds = time.perf_counter() - start
        tools.drain(0.5)
        probe = json.loads(
            tools.call("Runtime.evaluate", expression=_PROBE_JS, returnByValue=True)["result"][
                "value"
            ]
        )
        check = PageCheck(
            url=url,
            title=probe["title"],
            plots=probe["plots"],
            absent_notes=probe["absent"],
            names_banner=probe["banner"],
            text=probe["text"],
            load_seconds=load_seconds,
            overflow_px=int(probe.get("overflow") or 0),
        )
        if screenshot is not None:
            check.screenshot = _screenshot(tools, Path(screenshot), window)
        tools.drain(0.2)
    finally:
        events, tools.events = tools.events, []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            check.console_errors.append(
                " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
                )
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            check.console_errors.append(
                details.get("exception", {}).get("description") or details.get("text", "exception")
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            check.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            req_url = params.get("request", {}).get("url", "")
            if req_url != url and not req_url.startswith("data:"):
                check.network_requests.append(req_url)
    return check
