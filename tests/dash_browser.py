#!/usr/bin/python3
"""dash_browser.py - open gambar-dash's page in headless Chromium, as a
person would, and report what it shows (test helper for t_dash_browser.sh).

Drives Chromium over the DevTools protocol (python3-websockets): navigates
to URL, waits until the page says its event stream is live, then reads the
DOM twice, SECONDS apart, printing one line per reading:
    reading N step=S rows=R conn=C charts=K msgs=M nochart=B grid=W names=...
and saves a screenshot of the whole page to SHOT. --dump-dom cannot be
used: it dumps at the load event, before the stream delivers anything,
and --virtual-time-budget never ends while an EventSource is open.
Exit 0 when both readings were taken, 1 otherwise (with the reason)."""
import asyncio
import base64
import json
import sys
import time

import cdp

url, shot, seconds, tmp = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

READ = """(() => {
  const t = (id) => (document.getElementById(id) || {}).textContent || '';
  const canv = Array.from(document.querySelectorAll('canvas')).filter(c => c.width > 0 && c.height > 0).length;
  return JSON.stringify({step: t('step'), conn: t('conn'), msgs: t('msgs'),
                         rows: document.querySelectorAll('#latest tbody tr').length, charts: canv,
                         grid: (document.getElementById('grid') || {}).naturalWidth || 0,
                         nochart: !(document.getElementById('nochart') || {hidden: true}).hidden,
                         names: Array.from(document.querySelectorAll('#latest tbody tr')).map(r => r.dataset.name)});
})()"""


async def drive(port):
    async with cdp.Page(port, 30) as pg:
        call = pg.call

        async def read():
            r = await call("Runtime.evaluate", expression=READ, returnByValue=True)
            if "value" not in r["result"]:  # page still loading, or a script error
                return {"step": "", "conn": "", "msgs": "", "rows": 0, "charts": 0, "nochart": True,
                        "names": [], "error": r.get("exceptionDetails", {}).get("text", "")}
            return json.loads(r["result"]["value"])

        await call("Page.enable")
        await call("Page.navigate", url=url)
        deadline = time.time() + 20
        st = None
        while time.time() < deadline:
            st = await read()
            if st["conn"] == "live" and st["step"] not in ("", "-"):
                break
            await asyncio.sleep(0.2)
        else:
            print("page never went live: %s" % st)
            return 1
        readings = []
        for i in (1, 2):
            if i == 2:
                await asyncio.sleep(seconds)
            await asyncio.sleep(0.5)  # one redraw period and then some
            st = await read()
            readings.append(st)
            print("reading %d step=%s rows=%d conn=%s charts=%d msgs=%s nochart=%s grid=%d names=%s" % (
                i, st["step"], st["rows"], st["conn"], st["charts"], st["msgs"], st["nochart"], st["grid"],
                ",".join(sorted(set(st["names"])))))
        m = await call("Page.getLayoutMetrics")
        size = m.get("cssContentSize") or m["contentSize"]
        img = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        with open(shot, "wb") as f:
            f.write(base64.b64decode(img["data"]))
        return 0


cdp.run(tmp, drive)
