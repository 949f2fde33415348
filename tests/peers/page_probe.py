"""Opens a page in headless Chromium and samples it through the DevTools protocol.

Usage: page_probe.py URL SAMPLES EVERY_SECONDS [SCREENSHOT.png]

Navigates once, then every EVERY_SECONDS evaluates the page's own figures (the same DOM the
operator sees) and prints one JSON line per sample:
  {"t": seconds since navigation, "live_events": n, "campaigns": {id: {field: text}}}
With SCREENSHOT, the last sample is followed by a full-page PNG. Needs Debian's `chromium` and
PyPI's `websocket-client`. Exits 2 when either is missing, so the caller can say it skipped.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import websocket  # websocket-client
except ImportError:
    print("page_probe: no websocket-client", file=sys.stderr)
    sys.exit(2)

PROBE = """(() => {
  const out = {};
  for (const s of document.querySelectorAll('section.campaign')) {
    const f = {};
    for (const el of s.querySelectorAll('[data-field]')) f[el.dataset.field] = el.textContent.trim();
    out[s.dataset.campaign] = f;
  }
  return JSON.stringify({live_events: Number(document.body.dataset.liveEvents || 0),
                         history: Number(document.body.dataset.history || 0),
                         charts: document.querySelectorAll('section.campaign svg.chart polyline').length,
                         live: document.getElementById('live').textContent, campaigns: out});
})()"""


def main():
    url, samples, every = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    shot = sys.argv[4] if len(sys.argv) > 4 else None
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        print("page_probe: no chromium", file=sys.stderr)
        sys.exit(2)
    profile = tempfile.mkdtemp(prefix="page-probe-")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
         "--remote-allow-origins=*", f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(300):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=30)
        ids = iter(range(1, 1 << 30))

        def call(method, **params):
            i = next(ids)
            ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                m = json.loads(ws.recv())
                if m.get("id") == i:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m["result"]

        call("Page.enable")
        call("Page.navigate", url=url)
        start = time.time()
        for n in range(samples):
            time.sleep(every)
            r = call("Runtime.evaluate", expression=PROBE, returnByValue=True)
            sample = json.loads(r["result"]["value"])
            sample["t"] = round(time.time() - start, 2)
            print(json.dumps(sample), flush=True)
        if shot:
            png = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            with open(shot, "wb") as f:
                f.write(base64.b64decode(png["data"]))
        ws.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
