"""The chat page in a real browser: headless Chromium, driven over the Chrome DevTools Protocol
(a minimal WebSocket client on the standard library), opens ./serve's /, types a message, and
watches the reply stream into the page; then regenerate, a refused request (temperature out of
range) showing its error, and clear. Saves a screenshot.

Usage: page_test.py BASE_URL SCREENSHOT.png   (chromium from $CHROMIUM, else /usr/bin/chromium)
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request


def fail(what):
    print(f"FAIL: {what}", flush=True)
    sys.exit(1)


class WebSocket:
    """Just enough of RFC 6455 for CDP: a client, text frames, no extensions."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            fail(f"websocket handshake: {head!r}")

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                fail("the browser closed the DevTools connection")
            buf += chunk
        return buf

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            message += payload
            if b0 & 0x80:
                return message.decode()


class Page:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    fail(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            fail(f"javascript {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, what, timeout=60):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.js(expr):
                return
            time.sleep(0.02)
        fail(f"timed out waiting for {what}")

    def type_and_send(self, text):
        self.js("document.getElementById('input').focus()")
        self.call("Input.insertText", text=text)
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                      **({"text": "\r"} if kind == "keyDown" else {}))


def watch_reply(page, n):
    """Polls the n-th assistant bubble while it streams; returns (lengths seen, final text)."""
    sel = f"document.querySelectorAll('.assistant')[{n}]"
    page.wait(f"!!{sel}", f"assistant bubble {n}")
    seen = []
    t0 = time.time()
    while time.time() - t0 < 120:
        length, pending = page.js(f"[{sel}.textContent.length, {sel}.classList.contains('pending')]")
        if not seen or seen[-1] != length:
            seen.append(length)
        if not pending:
            break
        time.sleep(0.005)
    return seen, page.js(f"{sel}.textContent")


def main(base, shot):
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which(chromium):
        fail(f"{chromium} not found (launch/setup.sh installs Debian's chromium)")
    profile = tempfile.mkdtemp()
    proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "--window-size=1000,700", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(600):
            if os.path.exists(port_file) and open(port_file).read().count("\n") >= 1:
                break
            time.sleep(0.05)
        else:
            fail("chromium did not open its DevTools port")
        port = open(port_file).read().split("\n")[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = Page([t for t in targets if t["type"] == "page"][0]["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Page.navigate", url=base + "/")
        page.wait("document.readyState === 'complete' && !!document.getElementById('input')", "the page")
        page.wait("document.getElementById('model').textContent.includes('kiln-tiny')", "the model name (/v1/models)")
        model = page.js("document.getElementById('model').textContent")
        print(f"page: {page.js('document.title')!r}, {model!r}")
        page.js("document.getElementById('maxtokens').value = 300")

        page.type_and_send("Hello, who are you?")
        page.wait("document.querySelectorAll('.user').length === 1", "the user's message")
        if page.js("document.querySelector('.user').textContent") != "Hello, who are you?":
            fail("the user's bubble does not show the typed message")
        seen, text = watch_reply(page, 0)
        print(f"reply streamed through {len(seen)} lengths {seen[:6]}...{seen[-3:]}: {text[:60]!r}...")
        if len(text) < 20:
            fail(f"the reply is too short to be a reply: {text!r}")
        if len([x for x in seen if 0 < x < len(text)]) < 3:
            fail(f"the reply did not stream (lengths seen while pending: {seen})")
        if page.js("document.getElementById('error').textContent"):
            fail("an error is shown after a good reply")
        page.call("Page.bringToFront")
        shot_data = page.call("Page.captureScreenshot", format="png")["data"]
        os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
        with open(shot, "wb") as f:
            f.write(base64.b64decode(shot_data))
        print(f"screenshot: {os.path.abspath(shot)}")

        # Multi-turn: a second message carries the first turn (the request holds 3 messages).
        page.js("document.getElementById('maxtokens').value = 20")
        page.type_and_send("And where do you live?")
        watch_reply(page, 1)
        if page.js("messages.length") != 4:
            fail(f"the conversation holds {page.js('messages.length')} messages after two turns, not 4")
        # Regenerate replaces the last reply.
        page.js("document.getElementById('regenerate').click()")
        page.wait("document.querySelectorAll('.assistant').length === 2 && "
                  "!document.querySelector('.assistant.pending') && messages.length === 4", "the regenerated reply")
        # A refused request is shown as an error.
        page.js("document.getElementById('temperature').value = 5")
        page.type_and_send("Too hot?")
        page.wait("document.getElementById('error').textContent.length > 0", "the error message")
        err = page.js("document.getElementById('error').textContent")
        print(f"refused request shows: {err!r}")
        if "400" not in err or "temperature" not in err:
            fail(f"the error does not say what was refused: {err!r}")
        page.js("document.getElementById('clear').click()")
        if page.js("document.querySelectorAll('.msg').length") != 0 or page.js("messages.length") != 0:
            fail("clear left messages behind")
        print("ok: the page streams a reply in headless Chromium; multi-turn, regenerate, error and clear work")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
