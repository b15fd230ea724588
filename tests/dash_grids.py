#!/usr/bin/python3
"""dash_grids.py - the dashboard's checkpoint grids and sample button in
headless Chromium, as a person sees them (test helper for t_dash_grids.sh).

  dash_grids.py URL SHOT TMP 'SHELL COMMAND'

Opens URL, waits until the stream is live and the strip of checkpoint
grids shows one loaded image, reads it ("reading 1 ..."), runs the shell
command (the test adds a checkpoint and announces it), waits until the
strip shows two loaded images and reads it again ("reading 2 ..."); each
reading gives the figures' captions (newest first) and a hash of the
pixels of the newest strip image and of the "Latest samples" image (drawn
onto a canvas). Then it presses "Sample 16" and reports what the image
became ("button src=blob:... err=..."), fetches /sample from the page
("fetch status=... type=... sig=<first 8 bytes hex>"), and saves a
screenshot to SHOT. Exit 0 when all of that could be done, 1 otherwise."""
import asyncio
import base64
import json
import subprocess
import sys
import time

import cdp

url, shot, tmp, between = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]

READ = """(() => {
  const hash = (img) => {
    if (!img || !img.complete || !img.naturalWidth) return '';
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const x = c.getContext('2d'); x.drawImage(img, 0, 0);
    const d = x.getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261;
    for (let i = 0; i < d.length; i++) { h ^= d[i]; h = Math.imul(h, 16777619) >>> 0; }
    return c.width + 'x' + c.height + ':' + h.toString(16);
  };
  const figs = Array.from(document.querySelectorAll('#strip figure'));
  const imgs = figs.map((f) => f.querySelector('img'));
  return JSON.stringify({conn: (document.getElementById('conn') || {}).textContent || '',
    figs: figs.length, loaded: imgs.filter((i) => i.complete && i.naturalWidth > 0).length,
    captions: figs.map((f) => f.querySelector('figcaption').textContent),
    newest: hash(imgs[0]), latest: hash(document.getElementById('grid'))});
})()"""

CLICK = """(() => { document.getElementById('grid').removeAttribute('src');
  document.querySelector('#sampleform button').click(); return 1; })()"""
AFTER = """JSON.stringify({src: document.getElementById('grid').getAttribute('src') || '',
  w: document.getElementById('grid').naturalWidth, err: document.getElementById('serr').textContent})"""
FETCH = """fetch('/sample?n=16&seed=5').then(async (r) => {
  const b = new Uint8Array(await r.arrayBuffer());
  return JSON.stringify({status: r.status, type: r.headers.get('content-type'),
    sig: Array.from(b.slice(0, 8)).map((x) => x.toString(16).padStart(2, '0')).join('')}); })"""


async def drive(port):
    async with cdp.Page(port, 60) as pg:
        call = pg.call

        async def ev(expr, promise=False):
            r = await call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=promise)
            if "value" not in r["result"]:
                return None
            return json.loads(r["result"]["value"]) if isinstance(r["result"]["value"], str) else r["result"]["value"]

        async def until(pred, what, seconds=30):
            deadline = time.time() + seconds
            st = None
            while time.time() < deadline:
                st = await ev(READ)
                if st and pred(st):
                    return st
                await asyncio.sleep(0.2)
            print("timed out waiting for %s: %s" % (what, st))
            return None

        await call("Page.enable")
        await call("Page.navigate", url=url)
        for i in (1, 2):
            if i == 2:
                subprocess.run(["sh", "-c", between], check=True)
            st = await until(lambda s, i=i: s["conn"] == "live" and s["figs"] >= i and s["loaded"] >= i
                             and s["newest"] and s["latest"], "%d strip image(s)" % i)
            if not st:
                return 1
            await asyncio.sleep(0.5)
            st = await ev(READ)
            print("reading %d figs=%d captions=%s newest=%s latest=%s" % (
                i, st["figs"], ",".join(st["captions"]), st["newest"], st["latest"]))
        await ev(CLICK)
        deadline = time.time() + 30
        st = None
        while time.time() < deadline:
            st = await ev(AFTER)
            if st and ((st["src"].startswith("blob:") and st["w"] > 0) or st["err"]):
                break
            await asyncio.sleep(0.2)
        print("button src=%s width=%s err=%s" % (st["src"][:5], st["w"], st["err"]))
        f = await ev(FETCH, promise=True)
        print("fetch status=%s type=%s sig=%s" % (f["status"], f["type"], f["sig"]))
        m = await call("Page.getLayoutMetrics")
        size = m.get("cssContentSize") or m["contentSize"]
        img = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        with open(shot, "wb") as fh:
            fh.write(base64.b64decode(img["data"]))
        return 0


cdp.run(tmp, drive)
