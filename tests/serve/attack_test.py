"""Attacks on ./serve over raw sockets (issue 19, defects 1-5), run by tests/e2e/serve_attack.sh.

attack_test.py open URL PID         nesting, bodies, headers, slow clients, cross-site, sampling
attack_test.py keyed URL PID KEY    bodies before the API key check, --cors http://good.example

Every refusal must be a 4xx in OpenAI's error shape, answered quickly, without the server reading
what it refused; the server must keep serving. The server's peak RSS (VmHWM, reset through
/proc/PID/clear_refs before each group) is printed per attack group and bounded.
"""
import concurrent.futures as cf
import ctypes
import ctypes.util
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
import zlib

ok_count = 0
MiB = 1 << 20
RSS_BOUND = 64 * MiB  # the most an attack group may raise the server's peak RSS


def check(cond, what):
    global ok_count
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    ok_count += 1


class Server:
    def __init__(self, url, pid, key=None):
        u = urllib.parse.urlparse(url)
        self.host, self.port, self.pid, self.key = u.hostname, u.port, int(pid), key
        self.hostport = f"{self.host}:{self.port}"

    def vm(self, field):
        for line in open(f"/proc/{self.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    def reset_peak(self):
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        return self.vm("VmRSS")

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection: (status, headers, body bytes)."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def error(self, status, what, code=None, **kw):
        """The request must be refused with `status` in OpenAI's error shape."""
        t0 = time.time()
        st, _, data = self.request(**kw)
        dt = time.time() - t0
        check(st == status, f"{what}: HTTP {st}, expected {status}: {data[:200]!r}")
        e = json.loads(data)["error"]
        check(set(e) >= {"message", "type", "param", "code"}, f"{what}: not OpenAI's error shape: {e}")
        if code:
            check(e["code"] == code, f"{what}: code {e['code']!r}, expected {code!r}")
        print(f"  {status} in {dt:.2f} s  {what}: {e['message'][:100]}")
        return e

    def completion(self, prompt="ROMEO:", **extra):
        body = json.dumps({"prompt": prompt, "max_tokens": 8, "seed": 1, **extra})
        st, _, data = self.request("POST", "/v1/completions", body)
        check(st == 200, f"a plain completion after the attacks: HTTP {st} {data[:200]!r}")
        return json.loads(data)["choices"][0]["text"]

    def alive(self, what):
        st, _, _ = self.request("GET", "/health", timeout=5)
        check(st == 200, f"/health after {what}")
        self.completion()

    def raw(self, head, body_iter=None, timeout=20):
        """Sends `head` (bytes) and then the pieces of body_iter while reading the answer on another
        thread. Returns (status or None, error body or None, bytes sent, seconds)."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        sent = [0]
        result = {}

        def reader():
            try:
                r = http.client.HTTPResponse(s)
                r.begin()
                result["status"] = r.status
                result["body"] = r.read()
            except (OSError, http.client.HTTPException) as e:
                result["err"] = e

        t0 = time.time()
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        try:
            s.sendall(head)
            sent[0] += len(head)
            for piece in body_iter or ():
                if not th.is_alive() or time.time() - t0 > timeout:
                    break
                s.sendall(piece)
                sent[0] += len(piece)
        except OSError:
            pass  # the server closed: it stopped reading
        th.join(timeout)
        dt = time.time() - t0
        s.close()
        body = result.get("body")
        try:
            err = json.loads(body)["error"] if body else None
        except ValueError:
            err = None
        return result.get("status"), err, sent[0], dt


def rss_group(srv, name, fn):
    base = srv.reset_peak()
    fn()
    peak = srv.vm("VmHWM")
    print(f"[rss] {name}: peak RSS {peak / MiB:.1f} MiB, {max(0, peak - base) / MiB:.1f} MiB above the "
          f"{base / MiB:.1f} MiB before it (bound {RSS_BOUND / MiB:.0f} MiB)")
    check(peak - base < RSS_BOUND, f"{name}: the peak RSS grew by {(peak - base) / MiB:.1f} MiB")


def post_head(srv, path="/v1/completions", extra=""):
    key = f"Authorization: Bearer {srv.key}\r\n" if srv.key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: {srv.hostport}\r\nContent-Type: application/json\r\n{key}{extra}\r\n").encode()


def chunks(total, size=64 * 1024, byte=b" "):
    piece = b"%x\r\n" % size + byte * size + b"\r\n"
    for _ in range(total // size):
        yield piece


# ---- defect 1: nesting ------------------------------------------------------------------------
def nesting(srv):
    print("nesting:")
    deep = lambda n, o="[", c="]": o * n + c * n  # noqa: E731
    cases = [
        ("/v1/completions", '{"prompt": %s}' % deep(200_000), "prompt nested 200,000 deep"),
        ("/v1/completions", '{"prompt": "a", "stop": %s}' % deep(1_000_000), "stop nested 1,000,000 deep (2 MB)"),
        ("/v1/completions", '{"prompt": "a", "extra": %s1%s}' % ('{"a":' * 300_000, "}" * 300_000),
         "an unknown field: objects nested 300,000 deep"),
        ("/v1/completions", '{"prompt": "a", "temperature": %s}' % deep(100_000), "temperature nested"),
        ("/v1/chat/completions", '{"messages": %s}' % deep(1_000_000), "messages nested 1,000,000 deep"),
        ("/v1/chat/completions", '{"messages": [{"role": "user", "content": %s}]}' % deep(500_000),
         "content nested 500,000 deep"),
        ("/v1/chat/completions", '{"messages": [{"role": "user", "content": [{"type": "text", "text": %s}]}]}'
         % deep(500_000), "a content part's text nested"),
        ("/v1/chat/completions", '{"messages": [{"role": %s, "content": "x"}]}' % deep(500_000), "role nested"),
        ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "x"}], "stream_options": %s}'
         % deep(500_000), "stream_options nested"),
        # The token endpoints (issue 23) parse through the same depth check.
        ("/tokenize", '{"prompt": %s}' % deep(1_000_000), "/tokenize prompt nested 1,000,000 deep"),
        ("/detokenize", '{"tokens": %s}' % deep(1_000_000), "/detokenize tokens nested 1,000,000 deep"),
    ]
    for path, body, what in cases:
        check(len(body) < 4 * MiB, f"{what}: the body must fit the 4 MiB limit")
        srv.error(400, what, "invalid_json", method="POST", path=path, body=body)
    # Brackets inside a string are text, not nesting.
    text = srv.completion(prompt="[" * 200 + "{" * 200 + "\\\"]")
    check(isinstance(text, str), "brackets inside a string are not nesting")
    # 32 levels pass the depth check (and fail later for what they are).
    srv.error(400, "32 levels deep: past the depth check, refused as a wrong type", "invalid_type",
              method="POST", path="/v1/completions", body='{"prompt": %s}' % deep(31))
    srv.alive("the nesting attacks")


# ---- defect 2: bodies ---------------------------------------------------------------------------
def brotli_bomb(n):
    lib = ctypes.CDLL(ctypes.util.find_library("brotlienc") or "libbrotlienc.so.1")
    data = b" " * n
    out = ctypes.create_string_buffer(n // 100 + 1024)
    size = ctypes.c_size_t(len(out))
    ok = lib.BrotliEncoderCompress(5, 22, 0, ctypes.c_size_t(n), data, ctypes.byref(size), out)
    assert ok, "BrotliEncoderCompress"
    return out.raw[: size.value]


def bodies(srv):
    print("bodies:")
    # 200 MiB chunked: refused after at most the wire cap (8 MiB), not read whole.
    st, err, sent, dt = srv.raw(post_head(srv, extra="Transfer-Encoding: chunked\r\n"), chunks(200 * MiB))
    print(f"  {st} after {sent / MiB:.1f} MiB sent, {dt:.2f} s  200 MiB chunked body")
    check(st == 413 and err and err["code"] == "request_too_large", f"200 MiB chunked: {st} {err}")
    for path in ("/tokenize", "/detokenize"):  # the token endpoints read bodies through the same cap
        st, err, sent, dt = srv.raw(post_head(srv, path, "Transfer-Encoding: chunked\r\n"), chunks(200 * MiB))
        print(f"  {st} after {sent / MiB:.1f} MiB sent, {dt:.2f} s  200 MiB chunked to POST {path}")
        check(st == 413 and err and err["code"] == "request_too_large", f"chunked to {path}: {st} {err}")
        check(sent < 48 * MiB and dt < 10, f"chunked to {path}: the server read on ({sent / MiB:.0f} MiB)")
    check(sent < 48 * MiB and dt < 10, f"200 MiB chunked: the server read on ({sent / MiB:.0f} MiB, {dt:.1f} s)")
    # The same to a path that has no body, and to /health.
    for path, status in (("/nope", 404), ("/health", 405)):
        st, err, sent, dt = srv.raw(post_head(srv, path, "Transfer-Encoding: chunked\r\n"), chunks(200 * MiB))
        print(f"  {st} after {sent / MiB:.1f} MiB sent, {dt:.2f} s  200 MiB chunked to POST {path}")
        check(st == status and err, f"chunked to {path}: {st} {err}")
        check(sent < 48 * MiB and dt < 10, f"chunked to {path}: the server read on ({sent / MiB:.0f} MiB)")
    # Neither a length nor chunked: 411 at once (httplib would read until the client closes).
    st, err, sent, dt = srv.raw(post_head(srv), (b" " * 65536 for _ in range(3200)))
    print(f"  {st} after {sent / MiB:.1f} MiB sent, {dt:.2f} s  a POST without a length")
    check(st == 411 and err and err["code"] == "length_required" and sent < 48 * MiB, f"no length: {st} {err}")
    # A declared 300 MiB: 413 before a byte of it.
    st, err, sent, dt = srv.raw(post_head(srv, extra=f"Content-Length: {300 * MiB}\r\n"),
                                (b" " * 65536 for _ in range(4800)))
    print(f"  {st} after {sent / MiB:.1f} MiB sent, {dt:.2f} s  Content-Length 300 MiB")
    check(st == 413 and sent < 48 * MiB, f"Content-Length 300 MiB: {st}")
    # Compression bombs: 4 MiB after decompression at most.
    big = b" " * (200 * MiB)
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    bombs = {"gzip": gz.compress(big) + gz.flush(), "deflate": zlib.compress(big, 9), "br": brotli_bomb(64 * MiB)}
    del big
    for enc, data in bombs.items():
        e = srv.error(413, f"a {enc} bomb ({len(data)} bytes -> {200 if enc != 'br' else 64} MiB)",
                      "request_too_large", method="POST", path="/v1/completions", body=data,
                      headers={"Content-Encoding": enc})
        check("decompression" in e["message"], f"{enc} bomb message: {e['message']}")
    srv.error(413, "a gzip bomb to /tokenize", "request_too_large", method="POST", path="/tokenize",
              body=bombs["gzip"], headers={"Content-Encoding": "gzip"})
    # A real compressed request still works; an unknown encoding is a 415.
    small = json.dumps({"prompt": "ROMEO:", "max_tokens": 4, "seed": 1}).encode()
    for enc, data in (("gzip", zlib.compress(small)), ("deflate", zlib.compress(small))):
        st, _, out = srv.request("POST", "/v1/completions", data, {"Content-Encoding": enc})
        check(st == 200, f"a {enc} request: HTTP {st} {out[:200]!r}")
    srv.error(415, "Content-Encoding: compress", "unsupported_media_type", method="POST", path="/v1/completions",
              body=small, headers={"Content-Encoding": "compress"})
    # Framing an attacker would try next.
    st, err, _, _ = srv.raw(post_head(srv, extra="Transfer-Encoding: gzip, chunked\r\n"), chunks(MiB))
    check(st == 400 and err, f"Transfer-Encoding gzip, chunked: {st}")
    st, err, _, _ = srv.raw(post_head(srv, extra="Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), chunks(MiB))
    check(st == 400 and err, f"Transfer-Encoding + Content-Length: {st}")
    st, err, _, _ = srv.raw(post_head(srv, extra="Transfer-Encoding: chunked\r\n"),
                            iter([b"zz\r\nabc\r\n0\r\n\r\n"]))
    check(st == 400 and err, f"malformed chunk size: {st} {err}")
    srv.alive("the body attacks")


# ---- defect 4: headers and slow clients ----------------------------------------------------------
def headers(srv):
    print("headers:")
    lines = (b"".join(b"X-%d: y\r\n" % (i * 1000 + k) for k in range(1000)) for i in range(2000))
    st, err, sent, dt = srv.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n", lines)
    print(f"  {st} after {sent / MiB:.2f} MiB sent, {dt:.2f} s  2,000,000 header lines")
    check(st == 431 and err and sent < 32 * MiB, f"2,000,000 header lines: {st} {err}")
    st, err, sent, dt = srv.raw(b"GET /health HTTP/1.1\r\nX-Big: ", (b"a" * 65536 for _ in range(1600)))
    print(f"  {st} after {sent / MiB:.2f} MiB sent, {dt:.2f} s  one 100 MiB header line")
    check(st == 431 and sent < 32 * MiB, f"a 100 MiB header line: {st}")
    st, err, sent, dt = srv.raw(b"GET /" + b"a" * (16 * MiB), None)
    print(f"  {st} after {sent / MiB:.2f} MiB sent, {dt:.2f} s  a 16 MiB request line")
    check(st == 431, f"a 16 MiB request line: {st}")
    srv.alive("the header attacks")


def slow_clients(srv, read_timeout):
    print("slow clients:")
    n = 64  # twice the old worker count of a --slots 1 --queue 1 server
    socks = []
    for _ in range(n):
        s = socket.create_connection((srv.host, srv.port), timeout=read_timeout + 5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    t0 = time.time()
    try:
        st, _, _ = srv.request("GET", "/health", timeout=2)
    except OSError as e:
        st = e
    dt = time.time() - t0
    print(f"  /health with {n} slow-header connections open: {st} in {dt * 1000:.0f} ms")
    check(st == 200 and dt < 1.0, f"/health with {n} slow clients: {st} in {dt:.2f} s")
    srv.completion()
    # They drip a byte every 0.5 s; the request deadline cuts each of them with a 408.
    cut = 0
    deadline = t0 + read_timeout + 4
    for s in socks:
        s.settimeout(0.0)
    while time.time() < deadline and cut < n:
        for s in socks:
            if s.fileno() < 0:
                continue
            try:
                s.send(b"a")
            except OSError:
                pass
            try:
                data = s.recv(4096)
                if b" 408 " in data.split(b"\r\n")[0]:
                    cut += 1
                    s.close()
            except BlockingIOError:
                pass
            except OSError:
                s.close()
        time.sleep(0.5)
    dt = time.time() - t0
    print(f"  {cut} of {n} slow-header clients cut with 408 after {dt:.1f} s (read timeout {read_timeout} s)")
    check(cut == n, f"only {cut} of {n} slow clients were cut within {read_timeout + 4} s")
    # A slow body: the headers arrive, 10 of 100 bytes, then nothing.
    t0 = time.time()
    st, err, _, dt = srv.raw(post_head(srv, extra="Content-Length: 100\r\n") + b'{"prompt": ', None,
                             timeout=read_timeout + 5)
    print(f"  {st} after {dt:.1f} s  a body that stops arriving")
    check(st == 408 and err and dt < read_timeout + 2, f"a stalled body: {st} after {dt:.1f} s")
    for s in socks:
        s.close()
    srv.alive("the slow clients")


# ---- defect 5: cross-site -------------------------------------------------------------------------
def cross_site(srv):
    print("cross-site:")
    body = json.dumps({"prompt": "ROMEO:", "max_tokens": 4})
    srv.error(403, "a text/plain POST from a foreign Origin", "origin_not_allowed", method="POST",
              path="/v1/completions", body=body,
              headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    srv.error(403, "a JSON POST from a foreign Origin", "origin_not_allowed", method="POST", path="/v1/completions",
              body=body, headers={"Origin": "http://evil.example"})
    srv.error(403, "a DNS-rebinding page (same-origin with its own name)", "origin_not_allowed", method="POST",
              path="/v1/completions", body=body,
              headers={"Origin": f"http://evil.example:{srv.port}", "Host": f"evil.example:{srv.port}"})
    srv.error(403, "GET /v1/models from a foreign Origin", "origin_not_allowed", method="GET", path="/v1/models",
              headers={"Origin": "http://evil.example", "Content-Type": None})
    srv.error(403, "a preflight from a foreign Origin", "origin_not_allowed", method="OPTIONS",
              path="/v1/completions", headers={"Origin": "http://evil.example",
                                               "Access-Control-Request-Method": "POST"})
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        srv.error(415, f"Content-Type {ct}", "unsupported_media_type", method="POST", path="/v1/completions",
                  body=body, headers={"Content-Type": ct})
    st, h, _ = srv.request("POST", "/v1/completions", body, {"Origin": f"http://{srv.hostport}"})
    check(st == 200 and "Access-Control-Allow-Origin" not in h, f"same-origin POST: {st} {h}")
    st, _, _ = srv.request("POST", "/v1/completions", body, {"Content-Type": "application/json; charset=utf-8"})
    check(st == 200, f"application/json; charset=utf-8: {st}")


def cors_allowed(srv):
    print("--cors http://good.example:")
    good = "http://good.example"
    st, h, _ = srv.request("OPTIONS", "/v1/chat/completions", None,
                           {"Origin": good, "Access-Control-Request-Method": "POST",
                            "Access-Control-Request-Headers": "authorization, content-type", "Content-Type": None})
    print(f"  preflight: {st} {h.get('Access-Control-Allow-Origin')} {h.get('Access-Control-Allow-Methods')} "
          f"{h.get('Access-Control-Allow-Headers')}")
    check(st == 204 and h.get("Access-Control-Allow-Origin") == good and "POST" in h.get(
        "Access-Control-Allow-Methods", "") and "Authorization" in h.get("Access-Control-Allow-Headers", ""),
        f"preflight for an allowed origin: {st} {h}")
    st, h, data = srv.request("POST", "/v1/completions", json.dumps({"prompt": "ROMEO:", "max_tokens": 4}),
                              {"Origin": good})
    check(st == 200 and h.get("Access-Control-Allow-Origin") == good and h.get("Vary") == "Origin",
          f"an allowed cross-origin POST: {st} {h}")
    srv.error(403, "another origin", "origin_not_allowed", method="POST", path="/v1/completions",
              body="{}", headers={"Origin": "http://evil.example"})


# ---- defect 3: sampling edge values in one batch with normal requests ------------------------------
def sampling(srv):
    print("sampling:")

    def chat(extra, n=1):
        body = {"messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 24, "seed": 5, **extra}
        st, _, data = srv.request("POST", "/v1/chat/completions", json.dumps(body))
        return st, json.loads(data)

    normal = [{"temperature": 0.9, "seed": s} for s in range(6)]
    alone = [chat(x) for x in normal]
    greedy = chat({"temperature": 0})
    edge = [{"temperature": 1e-40}, {"temperature": 5e-324}, {"top_p": 1e-300}, {"top_p": 5e-324, "temperature": 1.5},
            {"temperature": 1e-40, "top_p": 1e-300, "top_k": 1}, {"temperature": 2, "top_k": 200, "top_p": 1e-45}]
    with cf.ThreadPoolExecutor(len(edge) + len(normal)) as ex:
        futs = [ex.submit(chat, x) for x in edge + normal]
        outs = [f.result(timeout=120) for f in futs]
    for x, (st, j) in zip(edge, outs[: len(edge)]):
        check(st == 200, f"{x}: HTTP {st} {j}")
        print(f"  200 {x}: {j['choices'][0]['message']['content'][:40]!r}")
    for x in edge[:2] + edge[4:5]:  # a temperature below 1e-6 is greedy
        st, j = outs[edge.index(x)]
        check(j["choices"][0]["message"]["content"] == greedy[1]["choices"][0]["message"]["content"],
              f"{x} is not the greedy reply")
    for i, (st, j) in enumerate(outs[len(edge):]):
        check(st == 200 and j == {**j, "choices": alone[i][1]["choices"]},
              f"a normal request batched with the edge values differs from the same request alone")
    print(f"  {len(normal)} normal requests in the same batches: 200, equal to the same requests alone")


# ---- with --api-key: bodies are refused before the key check reads them ---------------------------
def keyed(srv):
    print("before the API key:")
    nokey = Server(f"http://{srv.hostport}", srv.pid)

    def body_attacks():
        st, err, sent, dt = nokey.raw(post_head(nokey, extra="Transfer-Encoding: chunked\r\n"), chunks(200 * MiB))
        print(f"  {st} after {sent / MiB:.1f} MiB sent, {dt:.2f} s  200 MiB chunked, no key")
        check(st == 401 and err and err["code"] == "invalid_api_key" and sent < 48 * MiB, f"chunked without key: {st}")
        co = zlib.compressobj(9, zlib.DEFLATED, 31)
        bomb = co.compress(b" " * (200 * MiB)) + co.flush()
        nokey.error(401, "a gzip bomb without a key", "invalid_api_key", method="POST", path="/v1/completions",
                    body=bomb, headers={"Content-Encoding": "gzip"})
        srv.error(413, "a gzip bomb with the key", "request_too_large", method="POST", path="/v1/completions",
                  body=bomb, headers={"Content-Encoding": "gzip"})
        st, err, sent, dt = srv.raw(post_head(srv, extra="Transfer-Encoding: chunked\r\n"), chunks(200 * MiB))
        print(f"  {st} after {sent / MiB:.1f} MiB sent, {dt:.2f} s  200 MiB chunked, with the key")
        check(st == 413 and sent < 48 * MiB, f"chunked with the key: {st}")

    rss_group(srv, "bodies (API key)", body_attacks)
    cors_allowed(srv)
    srv.alive("the keyed attacks")


def main():
    mode, url, pid = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "open":
        read_timeout = float(sys.argv[4])
        srv = Server(url, pid)
        srv.completion()  # warm up before the first peak is taken
        rss_group(srv, "nesting", lambda: nesting(srv))
        rss_group(srv, "bodies", lambda: bodies(srv))
        rss_group(srv, "headers", lambda: headers(srv))
        slow_clients(srv, read_timeout)
        cross_site(srv)
        sampling(srv)
    else:
        srv = Server(url, pid, sys.argv[4])
        srv.completion()
        keyed(srv)
    print(f"ok: {ok_count} checks")


if __name__ == "__main__":
    main()
