"""Open an HTML file in headless Chromium and report script errors and broken images.

A test helper, driven over the Chrome DevTools Protocol (websocket-client): the page is
loaded, every exception, console error and log error is collected, and every ``<img>``
is checked to have loaded (``complete`` with a natural width above 0).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    """What the browser saw."""

    errors: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    title: str = ""
    sections: list[str] = field(default_factory=list)

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not i["ok"]]


def _wait_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    port_file = profile / "DevToolsActivePort"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if port_file.exists():
            text = port_file.read_text().split()
            if text:
                return int(text[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


@contextlib.contextmanager
def devtools_page(browser: str, timeout: float, *flags: str) -> Iterator[Any]:
    """Start headless Chromium with a fresh profile; yield a DevTools websocket to its page."""
    import websocket

    # the browser's helper processes may still write its profile as it exits
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        profile = Path(tmp)
        proc = subprocess.Popen(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
             *flags, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = _wait_port(profile, proc, timeout)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                        timeout=timeout) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout,
                                             suppress_origin=True)
            try:
                yield ws
            finally:
                ws.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def check_page(html: Path, browser: str, timeout: float = 60.0) -> PageCheck:
    """Load ``html`` in headless Chromium and collect errors and image states."""

    with devtools_page(browser, timeout) as ws:
        out = PageCheck()
        ids = iter(range(1, 10_000))

        def send(method: str, **params: object) -> int:
            i = next(ids)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            return i

        def collect(msg: dict) -> None:
            method = msg.get("method")
            p = msg.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.errors.append(f"exception: {d.get('exception', {}).get('description')}"
                                  f" {d.get('text')}")
            elif method == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.errors.append(f"console.error: {p.get('args')}")
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url')}")

        def wait_for(pred) -> dict:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                msg = json.loads(ws.recv())
                collect(msg)
                if pred(msg):
                    return msg
            raise TimeoutError("no answer from chromium")

        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            i = send(method)
            wait_for(lambda m, i=i: m.get("id") == i)
        send("Page.navigate", url=html.resolve().as_uri())
        wait_for(lambda m: m.get("method") == "Page.loadEventFired")
        expr = ("JSON.stringify({title: document.title, "
                "sections: Array.from(document.querySelectorAll('section[id], h2[id]'))"
                ".map(e => e.id), "
                "images: Array.from(document.images).map(i => ({alt: i.alt, "
                "ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth}))})")
        i = send("Runtime.evaluate", expression=expr, returnByValue=True)
        msg = wait_for(lambda m: m.get("id") == i)
        value = json.loads(msg["result"]["result"]["value"])
        out.title, out.sections, out.images = (value["title"], value["sections"],
                                               value["images"])
        return out


def inspect_page(html: Path, browser: str, expression: str, *,
                 fonts_of: str | None = None, screenshot: Path | None = None,
                 clip_of: str | None = None, timeout: float = 60.0) -> dict:
    """Load ``html`` in headless Chromium, evaluate ``expression``, and look closer.

    Parameters
    ----------
    html : Path
        The page.
    browser : str
        The Chromium executable.
    expression : str
        JavaScript whose value is JSON-serialisable (returned under ``"value"``); it runs
        after the page has loaded and may mark elements for ``fonts_of`` / ``clip_of``.
    fonts_of : str, optional
        CSS selector: the platform fonts Chromium drew each matching element's text with
        (``CSS.getPlatformFontsForNode``), under ``"fonts"`` as a list per element.
    screenshot : Path, optional
        Where to write a PNG screenshot (``Page.captureScreenshot``) of the element that
        ``clip_of`` selects (default: the first screen).
    clip_of : str, optional
        CSS selector of the element to screenshot.
    timeout : float
        Seconds to wait for each answer.

    Returns
    -------
    dict
        ``value``, ``fonts`` and ``errors`` (exceptions and console errors, as in
        :func:`check_page`).
    """
    import base64


    with devtools_page(browser, timeout, "--hide-scrollbars") as ws:
        ids = iter(range(1, 10_000))
        errors: list[str] = []
        loaded = False

        def call(method: str, **params: object) -> dict:
            nonlocal loaded
            i = next(ids)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                msg = json.loads(ws.recv())
                if msg.get("method") == "Runtime.exceptionThrown":
                    errors.append(str(msg["params"]["exceptionDetails"]))
                elif (msg.get("method") == "Runtime.consoleAPICalled"
                      and msg["params"].get("type") == "error"):
                    errors.append(str(msg["params"].get("args")))
                elif msg.get("method") == "Page.loadEventFired":
                    loaded = True
                if msg.get("id") == i:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    return msg.get("result", {})
            raise TimeoutError(f"no answer from chromium to {method}")

        for method in ("Runtime.enable", "Page.enable", "DOM.enable", "CSS.enable"):
            call(method)
        call("Emulation.setDeviceMetricsOverride", width=1200, height=900,
             deviceScaleFactor=1, mobile=False)
        call("Page.navigate", url=html.resolve().as_uri())
        end = time.monotonic() + timeout
        while not loaded and time.monotonic() < end:
            call("Runtime.evaluate", expression="document.readyState")
        res = call("Runtime.evaluate", expression=f"JSON.stringify({expression})",
                   returnByValue=True)
        out: dict = {"value": json.loads(res["result"]["value"]), "fonts": [],
                     "errors": errors}
        if fonts_of:
            root = call("DOM.getDocument", depth=-1)["root"]["nodeId"]
            for node in call("DOM.querySelectorAll", nodeId=root,
                             selector=fonts_of)["nodeIds"]:
                out["fonts"].append(call("CSS.getPlatformFontsForNode",
                                         nodeId=node)["fonts"])
        if screenshot is not None:
            params: dict = {"format": "png", "captureBeyondViewport": True}
            if clip_of:
                rect = call("Runtime.evaluate", returnByValue=True, expression=(
                    f"(() => {{const r = document.querySelector({json.dumps(clip_of)})"
                    ".getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + "
                    "scrollY, width: r.width, height: r.height, scale: 1};})()"))
                params["clip"] = rect["result"]["value"]
            shot = call("Page.captureScreenshot", **params)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return out
