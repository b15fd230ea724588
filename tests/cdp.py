"""cdp.py - headless Chromium driven over the DevTools protocol, for the
browser tests (dash_browser.py, dash_grids.py). One place for starting the
browser with the flags this machine needs and for the request/response
loop, so the tests only say what they look at.

  proc, port = cdp.browser(tmp)           # Chromium on 127.0.0.1, own profile in tmp
  async with cdp.Page(port, timeout) as pg:
      await pg.call("Page.navigate", url=...)
      pg.events                           # the newest 1000 events (enabled domains)
"""
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets


def browser(tmp):
    """Start headless Chromium with a new profile under tmp; return (process, DevTools port)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        sys.exit("chromium is not installed (scripts/install-deps.sh installs it)")
    prof = tempfile.mkdtemp(dir=tmp, prefix="chr")
    p = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--no-first-run", "--user-data-dir=" + prof, "--remote-debugging-port=0",
                          "--remote-debugging-address=127.0.0.1", "--window-size=1400,1500", "about:blank"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = prof + "/DevToolsActivePort"
    for _ in range(300):
        try:
            lines = open(port_file).read().split()
        except OSError:
            lines = []
        if lines:
            return p, int(lines[0])
        time.sleep(0.1)
    p.kill()
    sys.exit("chromium did not open its DevTools port")


def run(tmp, drive):
    """Start the browser, run the coroutine drive(port) to its end, stop the
    browser whatever happened, and exit with drive's return value."""
    proc, port = browser(tmp)
    try:
        rc = asyncio.run(drive(port))
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    sys.exit(rc)


class Page:
    """The browser's first page; call(method, **params) sends one DevTools
    command and returns its result (RuntimeError on an error reply; each
    reply waited for at most `timeout` seconds). The events that arrive
    meanwhile are kept in `events` (the newest 1000)."""

    def __init__(self, port, timeout):
        self.port, self.timeout, self.n, self.ws, self._cm = port, timeout, 0, None, None
        self.events = collections.deque(maxlen=1000)

    async def __aenter__(self):
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % self.port, timeout=10))
        page = [t for t in targets if t.get("type") == "page"][0]
        self._cm = websockets.connect(page["webSocketDebuggerUrl"], max_size=64 << 20)
        self.ws = await self._cm.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self._cm.__aexit__(*exc)

    async def call(self, method, **params):
        self.n += 1
        n = self.n
        await self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), self.timeout))
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg["result"]
            if "method" in msg:
                self.events.append(msg)
