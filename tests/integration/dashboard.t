#!/usr/bin/env python3
# The dashboard (GET / on the admin address, DESIGN §6): one self-contained page, loaded in
# headless Chromium from a running proxy with known traffic. The rendered DOM shows every route
# with its cutover, the rolled-back route marked, the monolith's share as /stats has it and p99
# figures per backend; at phone width nothing overflows. Screenshots land in tests/out/.
import base64
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

t = Tap()
OUT = os.path.join(REPO, "tests", "out")
os.makedirs(OUT, exist_ok=True)
CHROMIUM = shutil.which("chromium")

legacy = start_legacy()
fn = start_functions()
F = f"http://127.0.0.1:{fn.port}"
ROUTES = f"""functions:
  fn: {F}
routes:
  - name: catalog
    match: {{ path: /__echo/catalog }}
    function: fn
    cutover: 100
  - name: orders
    match: {{ path: /__echo/orders }}
    function: fn
    cutover: 25
  - name: checkout
    match: {{ path: /__echo/checkout }}
    function: fn
    cutover: 40
"""
proxy = Proxy(f"http://127.0.0.1:{legacy.port}", routes_yaml=ROUTES,
              settings="audit_log: audit.log\n")
P, A = proxy.port, proxy.admin_port

# ---- the page as served: complete, and nothing in it that would fetch from elsewhere ----
with open(os.path.join(REPO, "proxy", "dashboard.html"), "rb") as f:
    source = f.read()
st, hd, page = request(A, "GET", "/")
t.eq(st, 200, "GET / on the admin address is 200")
t.ok(hd.get("content-type", "").startswith("text/html"), "GET / is text/html",
     hd.get("content-type"))
t.ok(page == source, "GET / serves proxy/dashboard.html byte for byte",
     f"served {len(page)} bytes, source {len(source)}")
text = page.decode("utf-8", "replace")
t.eq(re.findall(r"https?://[^\s\"'<>)]*", text), [], "the page names no http:// or https:// URL")
t.eq(re.findall(r"<link\b|<script[^>]*\bsrc|<img\b|<iframe\b|@import|url\(|\bsrc=", text,
                re.I), [], "no linked stylesheet, script, image, frame or CSS url()")
t.ok(len(page) < 25 * 1024, "the page is under 25 KiB", len(page))

# ---- known traffic: checkout rolled back first, so all of its requests go to legacy ----
st, _, body = request(A, "POST", "/routes/checkout/rollback",
                      {"Content-Type": "application/json"},
                      json.dumps({"reason": "dashboard test"}).encode())
t.ok(st == 200, "checkout rolled back through the admin API", (st, body[:300]))
sent = {"catalog": 12, "orders": 40, "checkout": 9, "_default": 5}
paths = {"catalog": "/__echo/catalog", "orders": "/__echo/orders",
         "checkout": "/__echo/checkout", "_default": "/__echo/elsewhere"}
bad = []
for name, n in sent.items():
    for i in range(n):
        st, _, _ = request(P, "GET", f"{paths[name]}/{i}")
        if st != 200:
            bad.append((name, i, st))
t.eq(bad, [], "every request through the proxy is answered 200")


def stats():
    st, _, body = request(A, "GET", "/stats")
    return json.loads(body) if st == 200 else {}


before = stats()
by_name = {r["name"]: r for r in before.get("routes", [])}
t.eq({k: sum(by_name.get(k, {}).get("requests", {}).values()) for k in sent}, sent,
     "/stats counts the requests sent per route")
t.eq(by_name.get("checkout", {}).get("state"), "rolled_back", "/stats: checkout is rolled back")


class Dom(HTMLParser):
    """Every element of Chromium's DOM dump: tag, attributes, text inside, enclosing route."""
    VOID = {"meta", "input", "br", "img", "link", "hr", "source", "wbr", "area", "col", "embed"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.elements = [], []

    def handle_starttag(self, tag, attrs):
        route = next((e["attrs"]["data-route"] for e in reversed(self.stack)
                      if "data-route" in e["attrs"]), None)
        a = dict(attrs)
        e = {"tag": tag, "attrs": a, "text": [], "route": a.get("data-route", route),
             "classes": set((a.get("class") or "").split())}
        self.elements.append(e)
        if tag not in self.VOID:
            self.stack.append(e)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for e in self.stack:
            e["text"].append(data)

    def find(self, route=None, cls=None, id_=None):
        for e in self.elements:
            if id_ is not None and e["attrs"].get("id") != id_:
                continue
            if cls is not None and (cls not in e["classes"] or e["route"] != route):
                continue
            return {"text": "".join(e["text"]).strip(), "attrs": e["attrs"]}
        return None


def chromium(*args, timeout=40):
    """Runs headless Chromium on a fresh profile; returns (exit code, stdout, stderr)."""
    profile = tempfile.mkdtemp(prefix="sf-chromium-")
    try:
        p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                            *args], capture_output=True, timeout=timeout * SLOW)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode(
            "utf-8", "replace")
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def keep_png(tmp, name):
    """Checks a screenshot (a PNG of some substance) and keeps it as tests/out/NAME; written
    aside first so a concurrent run never sees half a file."""
    try:
        with open(tmp, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20000):
        os.unlink(tmp)
        return False
    os.replace(tmp, os.path.join(OUT, name))
    return True


class Cdp:
    """Chromium driven over --remote-debugging-pipe (DevTools protocol, NUL-framed JSON on
    fds 3 and 4): the flags alone cannot lay a page out narrower than 500 px."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="sf-chromium-")
        to_chrome, self.w = os.pipe()
        self.r, from_chrome = os.pipe()

        def fds():
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)
        self.p = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                   "--no-first-run", "--hide-scrollbars",
                                   f"--user-data-dir={self.profile}",
                                   "--remote-debugging-pipe", "about:blank"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_chrome)
        os.close(from_chrome)
        self.buf, self.n, self.session = b"", 0, None

    def call(self, method, params=None, timeout=15.0):
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout * SLOW
        while True:
            while b"\0" in self.buf:
                raw_, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw_)
                if m.get("id") == self.n:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
            left = deadline - time.time()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise RuntimeError(f"{method}: no answer from Chromium")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"{method}: Chromium closed the pipe")
            self.buf += chunk

    def open(self, url, width, height):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
        self.call("Page.navigate", {"url": url})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return r.get("result", {}).get("value")

    def wait_polls(self, n, timeout=20.0):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if int(self.eval("document.documentElement.dataset.polls || 0") or 0) >= n:
                return True
            time.sleep(0.1)
        return False

    def close(self):
        try:
            self.session = None
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        os.close(self.w)
        os.close(self.r)
        shutil.rmtree(self.profile, ignore_errors=True)


if CHROMIUM is None:
    t.ok(False, "headless Chromium is installed (make deps installs the chromium package)")
    sys.exit(1)

URL = f"http://127.0.0.1:{A}/"
# ---- wide: the DOM after a few polls, and a screenshot ----
wide_png = os.path.join(OUT, f".dashboard-{os.getpid()}.png")
rc, dom, err = chromium("--virtual-time-budget=8000", "--window-size=1280,900", "--dump-dom",
                        f"--screenshot={wide_png}", URL)
after = stats()
t.ok(rc == 0 and "<html" in dom, "Chromium loads the dashboard", f"rc {rc}\n{err[-2000:]}")
d = Dom()
d.feed(dom)
html = next((e for e in d.elements if e["tag"] == "html"), {"attrs": {}})["attrs"]
t.eq(html.get("data-status"), "ok", "the page polled /stats successfully")
t.ok(int(html.get("data-polls") or 0) >= 2, "and kept polling", html.get("data-polls"))
t.ok(keep_png(wide_png, "dashboard.png"),
     "a 1280x900 screenshot is written to tests/out/dashboard.png")

cards = [e for e in d.elements if e["tag"] == "article" and "data-route" in e["attrs"]]
t.eq([c["attrs"]["data-route"] for c in cards], ["catalog", "orders", "checkout", "_default"],
     "one card per route in table order, unmatched traffic last")
routes = {r["name"]: r for r in after.get("routes", [])}
for name, want in (("catalog", "100%"), ("orders", "25%"), ("checkout", "0%")):
    cut = d.find(name, "cutover")
    t.ok(cut is not None and cut["text"] == want and
         float(cut["attrs"].get("data-value") or -1) == routes[name]["cutover"],
         f"{name}: the card shows its name and cutover {want}", cut)
states = {c["attrs"]["data-route"]: c["attrs"].get("data-state") for c in cards}
t.eq(states.get("checkout"), "rolled_back", "the rolled-back route carries data-state=rolled_back")
t.ok(states.get("catalog") == "active" and states.get("orders") == "active",
     "the other routes are active", states)
badge = [e for e in d.elements if e["route"] == "checkout" and "badge" in e["classes"]]
t.ok(badge and "rolled back" in "".join(badge[0]["text"]), "checkout has a rolled back badge")

share = d.find(id_="legacy-share")
want = after.get("legacy_share")
t.ok(share is not None and want is not None and
     abs(float(share["attrs"].get("data-value") or -1) - want) < 1e-9 and
     share["text"] == f"{want * 100:.1f}%",
     "the monolith's share matches /stats legacy_share", (share, want))

for name in ("catalog", "orders", "checkout", "_default"):
    for be in ("legacy", "function"):
        n = routes[name]["requests"][be]
        p99 = d.find(name, f"p99-{be}")
        lat = (routes[name].get("latency_ms") or {}).get(be) or {}
        if n > 0:
            ok = p99 is not None and re.fullmatch(r"[0-9.]+ (ms|s)", p99["text"]) is not None
            v = float(p99["attrs"].get("data-value") or "nan") if ok else None
            t.ok(ok and v > 0 and abs(v - lat.get("p99", -1)) < 1e-9,
                 f"{name}: p99 {be} is a figure, the one /stats has ({n} requests)", (p99, lat))
        else:
            t.ok(p99 is not None and p99["attrs"].get("data-value") == "",
                 f"{name}: no p99 {be} without {be} requests", p99)
        rate = d.find(name, f"rate-{be}")
        t.ok(rate is not None and rate["text"].endswith("/s"), f"{name}: a {be} rate", rate)
        req = d.find(name, f"req-{be}")
        t.ok(req is not None and req["attrs"].get("data-value") == str(n),
             f"{name}: {n} {be} requests shown", req)
t.eq(d.find("orders", "shadow-ratio")["text"], "no shadow", "no shadow configured, and it says so")

# ---- phone width: nothing overflows; a screenshot ----
phone_png = os.path.join(OUT, f".dashboard-phone-{os.getpid()}.png")
cdp = Cdp()
try:
    cdp.open(URL, 390, 844)
    t.ok(cdp.wait_polls(2), "at 390 px the page polls and renders")
    layout = cdp.eval("JSON.stringify({w: innerWidth, sw: document.documentElement.scrollWidth,"
                      " o: document.documentElement.dataset.overflow,"
                      " cards: document.querySelectorAll('[data-route]').length})")
    layout = json.loads(layout or "{}")
    t.ok(layout.get("w") == 390 and layout.get("cards") == 4, "laid out at 390 px, all cards",
         layout)
    t.ok(layout.get("o") == "false" and layout.get("sw") == 390,
         "nothing overflows horizontally at phone width", layout)
    with open(phone_png, "wb") as f:
        f.write(base64.b64decode(cdp.call("Page.captureScreenshot", {"format": "png"})["data"]))
    t.ok(keep_png(phone_png, "dashboard-phone.png"),
         "a 390x844 screenshot is written to tests/out/dashboard-phone.png")
    # The overflow mark is live: a too-wide element turns it on at the next poll.
    cdp.eval("document.querySelector('main').appendChild(document.createElement('div'))"
             ".style.cssText = 'width: 600px; height: 10px'")
    n = int(cdp.eval("document.documentElement.dataset.polls") or 0)
    cdp.wait_polls(n + 2)
    t.eq(cdp.eval("document.documentElement.dataset.overflow"), "true",
         "a too-wide element is reported as overflow")
except RuntimeError as e:
    t.ok(False, "Chromium over the DevTools pipe", e)
finally:
    cdp.close()

t.eq(proxy.stop(), 0, "the proxy exits cleanly")
t.ok(proxy.sanitizer_report() is None, "no sanitizer report", proxy.sanitizer_report())
