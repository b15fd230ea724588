#!/usr/bin/python3
"""dash_prompt.py - the dashboard's Sample box with a prompt, as a person
uses it, in headless Chromium (test helper for t_dash_prompt.sh).

    dash_prompt.py URL TMP OUT.png PROMPT [PROMPT...]

Opens URL, and for each PROMPT: clicks into the prompt box, types the
prompt (DevTools Input events, so the page sees real keyboard input),
clicks "Sample 16" with the mouse, and waits (30 s) until the page shows
either a new image in the grid or an error beside the button. Prints one
line per prompt:
    prompt N shown=1 width=W height=H warn=TEXT err=TEXT
(the warning and error as the page shows them) and saves the image the
page shows after prompt N (the body of the /sample response the page
received, taken on its way with the DevTools Fetch domain: the page's
Content-Security-Policy keeps scripts from fetching its blob: URL, and
the Network domain keeps no body of a response read as a blob) as OUT.png with N inserted before ".png" (OUT-1.png, ...). Exit 0 when
every prompt got an answer (image or error), 1 otherwise."""
import asyncio
import base64
import json
import sys
import time

import cdp

url, tmp, out = sys.argv[1], sys.argv[2], sys.argv[3]
prompts = sys.argv[4:]

STATE = """(() => {
  const g = document.getElementById('grid');
  return JSON.stringify({src: g.getAttribute('src') || '', w: g.naturalWidth, h: g.naturalHeight,
                         err: document.getElementById('serr').textContent,
                         warn: document.getElementById('swarn').textContent});
})()"""

CENTER = """(() => {
  const r = document.getElementById('%s').getBoundingClientRect();
  return JSON.stringify([r.left + r.width / 2, r.top + r.height / 2]);
})()"""


async def drive(port):
    async with cdp.Page(port, 30) as pg:
        call = pg.call

        async def ev(expr):
            r = await call("Runtime.evaluate", expression=expr, returnByValue=True)
            if "exceptionDetails" in r:
                raise RuntimeError("page script failed: %s" % r["exceptionDetails"])
            return r["result"].get("value")

        async def click(elem_id):
            x, y = json.loads(await ev(CENTER % elem_id))
            for t in ("mousePressed", "mouseReleased"):
                await call("Input.dispatchMouseEvent", type=t, x=x, y=y, button="left", clickCount=1)

        await call("Page.enable")
        await call("Fetch.enable", patterns=[{"urlPattern": "*/sample?*", "requestStage": "Response"}])
        bodies = []  # the /sample response bodies, in order
        seen = set()

        async def pass_paused():
            """Take the body of each paused /sample response and let it go on."""
            for e in list(pg.events):
                if e["method"] != "Fetch.requestPaused" or e["params"]["requestId"] in seen:
                    continue
                rid = e["params"]["requestId"]
                seen.add(rid)
                b = await call("Fetch.getResponseBody", requestId=rid)
                bodies.append(base64.b64decode(b["body"]) if b["base64Encoded"] else b["body"].encode())
                await call("Fetch.continueRequest", requestId=rid)
        await call("Page.navigate", url=url)
        deadline = time.time() + 20
        while time.time() < deadline:
            r = await call("Runtime.evaluate", expression="document.readyState === 'complete' && "
                           "!!document.getElementById('sprompt')", returnByValue=True)
            if r["result"].get("value"):
                break
            await asyncio.sleep(0.2)
        else:
            print("page never loaded")
            return 1
        rc = 0
        for i, prompt in enumerate(prompts, 1):
            before = json.loads(await ev(STATE))
            await click("sprompt")
            # select what is there (the previous prompt) and type over it
            await ev("document.getElementById('sprompt').select()")
            await call("Input.insertText", text=prompt)
            await click("sbutton")
            deadline = time.time() + 30
            st = before
            while time.time() < deadline:
                await pass_paused()
                st = json.loads(await ev(STATE))
                if st["err"] or (st["src"] != before["src"] and st["src"].startswith("blob:") and st["w"] > 0):
                    break
                await asyncio.sleep(0.2)
            shown = int(st["src"] != before["src"] and st["w"] > 0)
            print("prompt %d shown=%d width=%d height=%d warn=%s err=%s" % (
                i, shown, st["w"], st["h"], st["warn"].replace("\n", " "), st["err"].replace("\n", " ")))
            if not shown and not st["err"]:
                print("prompt %d: no answer within 30 s" % i)
                rc = 1
                continue
            if shown:
                data = bodies[-1]
                with open(out[:-4] + "-%d.png" % i, "wb") as f:
                    f.write(data)
        return rc


cdp.run(tmp, drive)
