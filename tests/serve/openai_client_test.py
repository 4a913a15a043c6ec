"""./serve through the official `openai` Python client (and raw HTTP where a client cannot go).

Usage: openai_client_test.py main  BASE_URL TOK_JSON STEP_DIR   (a server with --slots 8 --queue 16)
       openai_client_test.py small BASE_URL API_KEY            (a server with --slots 1 --queue 1 --api-key)
The model is byte-level (tok.json has no merges), so tokens are counted independently with the
reference BPE (tests/reference/bpe_reference.py) and the greedy reply is checked against the
reference GPT (tests/reference/sample_bpb_ref.py). Prints what it measured; exits 1 on a failure.
"""
import concurrent.futures as cf
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import openai
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import bpe_reference  # noqa: E402

ok_count = 0


def check(cond, what):
    global ok_count
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    ok_count += 1


def client(base, key="none"):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)


def chat(c, content, **kw):
    return c.chat.completions.create(model="kiln", messages=[{"role": "user", "content": content}], **kw)


def stream_text(c, content, **kw):
    """The streamed reply: (text per choice, finish per choice, usage, chunks)."""
    texts, finish, usage, chunks = {}, {}, None, 0
    for ch in chat(c, content, stream=True, **kw):
        chunks += 1
        if ch.usage is not None:
            usage = ch.usage
        for choice in ch.choices:
            texts.setdefault(choice.index, "")
            if choice.delta.content:
                texts[choice.index] += choice.delta.content
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    return texts, finish, usage, chunks


def expect_status(status, fn, what, code=None):
    try:
        fn()
    except openai.APIStatusError as e:
        check(e.status_code == status, f"{what}: HTTP {e.status_code}, expected {status} ({e.message})")
        body = e.body if isinstance(e.body, dict) else {}
        # openai puts body["error"] into e.body for error responses
        check("message" in body and "type" in body, f"{what}: error body not in OpenAI's shape: {e.body}")
        if code is not None:
            check(body.get("code") == code, f"{what}: code {body.get('code')!r}, expected {code!r}")
        print(f"  {status} {what}: {body.get('message', '')[:90]}")
        return
    check(False, f"{what}: no error, expected HTTP {status}")


def raw_status(method, url, status, what, **kw):
    r = requests.request(method, url, timeout=30, **kw)
    check(r.status_code == status, f"{what}: HTTP {r.status_code}, expected {status}: {r.text[:200]}")
    if status >= 400:
        j = r.json()
        check(set(j["error"]) >= {"message", "type", "code"}, f"{what}: error body {j}")
        print(f"  {status} {what}: {j['error']['message'][:90]}")
    return r


def main_server(base, tok_json, step_dir):
    c = client(base)
    tok = json.load(open(tok_json))
    merges = [tuple(m) for m in tok["merges"]]
    ntok = lambda s: len(bpe_reference.encode(s, merges))  # noqa: E731

    models = c.models.list()
    check(len(models.data) == 1 and models.data[0].id == "kiln-tiny", f"/v1/models: {models}")
    print(f"/v1/models: {[m.id for m in models.data]}")

    # Non-streaming: usage against the reference tokenizer; same seed -> same text.
    q = "Hello, who are you?"
    r1 = chat(c, q, max_tokens=30, seed=7, temperature=1.0)
    r2 = chat(c, q, max_tokens=30, seed=7, temperature=1.0)
    r3 = chat(c, q, max_tokens=30, seed=8, temperature=1.0)
    t1 = r1.choices[0].message.content
    print(f"chat seed 7: {t1!r} finish={r1.choices[0].finish_reason} usage={r1.usage}")
    check(r1.object == "chat.completion" and r1.choices[0].message.role == "assistant", "chat shape")
    check(t1 == r2.choices[0].message.content, "the same seed gave two different replies")
    check(t1 != r3.choices[0].message.content, "seeds 7 and 8 gave the same reply")
    # <|bos|> <|user_start|> ... <|user_end|> <|assistant_start|>
    check(r1.usage.prompt_tokens == ntok(q) + 4, f"prompt_tokens {r1.usage.prompt_tokens} != {ntok(q) + 4}")
    if r1.choices[0].finish_reason == "length":
        check(r1.usage.completion_tokens == 30, f"completion_tokens {r1.usage.completion_tokens} at length 30")
    check(r1.usage.completion_tokens == ntok(t1), f"completion_tokens {r1.usage.completion_tokens} != {ntok(t1)}")
    check(r1.usage.total_tokens == r1.usage.prompt_tokens + r1.usage.completion_tokens, "total_tokens")

    # Streaming: the same text as the non-streamed reply with the same seed, usage at the end.
    texts, finish, usage, chunks = stream_text(c, q, max_tokens=30, seed=7, temperature=1.0,
                                               stream_options={"include_usage": True})
    print(f"stream seed 7: {texts[0]!r} in {chunks} chunks, usage={usage}")
    check(texts[0] == t1, f"streamed {texts[0]!r} != non-streamed {t1!r}")
    check(finish[0] == r1.choices[0].finish_reason, "streamed finish_reason")
    check(usage is not None and usage.completion_tokens == r1.usage.completion_tokens
          and usage.prompt_tokens == r1.usage.prompt_tokens, f"streamed usage {usage}")
    check(chunks >= 3, "the reply did not stream")

    # n = 2: choice i samples with seed + i.
    rn = chat(c, q, max_tokens=20, seed=11, n=2)
    ra, rb = chat(c, q, max_tokens=20, seed=11), chat(c, q, max_tokens=20, seed=12)
    a, b = ra.choices[0].message.content, rb.choices[0].message.content
    got = {ch.index: ch.message.content for ch in rn.choices}
    print(f"n=2: {got}")
    check(got == {0: a, 1: b}, f"n=2 choices {got} != seeds 11, 12 alone {a!r}, {b!r}")
    # The alone replies' usage, not a re-tokenization: a byte-level reply may hold a byte that is
    # not UTF-8 on its own (shown as U+FFFD, which re-encodes to 3 tokens).
    check(rn.usage.completion_tokens == ra.usage.completion_tokens + rb.usage.completion_tokens,
          f"n=2 usage {rn.usage} != {ra.usage.completion_tokens} + {rb.usage.completion_tokens}")
    sn, _, un, _ = stream_text(c, q, max_tokens=20, seed=11, n=2, stream_options={"include_usage": True})
    check(sn == got and un.completion_tokens == rn.usage.completion_tokens, f"streamed n=2 {sn}")

    # stop: a 3-character string from inside the reply (3 byte tokens: matched across token
    # boundaries); the reply ends right before its first occurrence, streamed or not, and usage
    # counts the tokens generated up to the end of the match.
    long = chat(c, q, max_tokens=60, seed=21, temperature=1.0).choices[0].message.content
    stop = long[12:15]
    cut = long.index(stop)
    want = long[:cut]
    rs = chat(c, q, max_tokens=60, seed=21, temperature=1.0, stop=[stop, "\u2603never"])
    print(f"stop {stop!r}: {rs.choices[0].message.content!r} finish={rs.choices[0].finish_reason}")
    check(rs.choices[0].message.content == want, f"stop: {rs.choices[0].message.content!r} != {want!r}")
    check(rs.choices[0].finish_reason == "stop", "stop: finish_reason")
    check(rs.usage.completion_tokens == ntok(want + stop), f"stop usage {rs.usage.completion_tokens}")
    ss, fs, _, _ = stream_text(c, q, max_tokens=60, seed=21, temperature=1.0, stop=stop)
    check(ss[0] == want and fs[0] == "stop", f"streamed stop: {ss[0]!r} != {want!r}")

    # /v1/completions, greedy: the reference GPT's greedy continuation of <|bos|> + "ROMEO:".
    rc = c.completions.create(model="kiln", prompt="ROMEO:", max_tokens=40, temperature=0)
    ref = subprocess.run([sys.executable, os.path.join(HERE, "..", "reference", "sample_bpb_ref.py"), "greedy",
                          step_dir, "ROMEO:", "40"], capture_output=True, check=True).stdout.decode()[len("ROMEO:"):]
    text = rc.choices[0].text
    print(f"completions greedy: {text!r}\n  reference greedy: {ref!r}")
    check(rc.object == "text_completion", "completions shape")
    check(len(ref) >= 8 and text.startswith(ref), "greedy /v1/completions differs from the reference GPT")
    check(rc.usage.prompt_tokens == 1 + ntok("ROMEO:"), f"completions prompt_tokens {rc.usage}")
    check(rc.usage.completion_tokens == ntok(text), f"completions completion_tokens {rc.usage}")
    st = "".join(ch.choices[0].text for ch in c.completions.create(model="kiln", prompt="ROMEO:", max_tokens=40,
                                                                      temperature=0, stream=True))
    check(st == text, "streamed /v1/completions")

    # Every error class with its status.
    print("errors:")
    u = base + "/v1/chat/completions"
    raw_status("POST", u, 400, "bad JSON", data=b"{\"messages\": [", headers={"Content-Type": "application/json"})
    raw_status("POST", u, 400, "a JSON array body", json=[1, 2])
    msg = [{"role": "user", "content": "hi"}]
    bad = lambda **kw: lambda: c.chat.completions.create(model="kiln", **kw)  # noqa: E731
    expect_status(400, bad(messages=[{"role": "wizard", "content": "hi"}]), "unknown role", "invalid_role")
    expect_status(400, bad(messages=[]), "empty messages")
    expect_status(400, bad(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 250
                           + msg), "501 messages")
    expect_status(400, bad(messages=[{"role": "user", "content": "x" * 8001}]), "8001 characters",
                  "string_above_max_length")
    expect_status(400, bad(messages=[{"role": "user", "content": "\u00e9" * 8001}]), "8001 two-byte characters")
    expect_status(400, bad(messages=[{"role": "user", "content": "x" * 7000}] * 5), "35000 characters in all")
    expect_status(400, bad(messages=[{"role": "assistant", "content": "hi"}, msg[0], msg[0]]), "roles out of order",
                  "invalid_role")
    expect_status(400, bad(messages=msg, temperature=2.5), "temperature 2.5")
    expect_status(400, bad(messages=msg, temperature=-0.1), "temperature -0.1")
    expect_status(400, bad(messages=msg, top_p=0), "top_p 0")
    expect_status(400, bad(messages=msg, max_tokens=0), "max_tokens 0")
    expect_status(400, bad(messages=msg, n=9), "n 9 > 8 slots")
    expect_status(400, bad(messages=msg, extra_body={"top_k": 201}), "top_k 201")
    expect_status(400, bad(messages=msg, stop=["a", "b", "c", "d", "e"]), "5 stop strings")
    expect_status(400, bad(messages=msg, extra_body={"temperature": "hot"}), "temperature a string", "invalid_type")
    ctx = models.data[0].model_extra["context_length"]
    expect_status(400, bad(messages=msg, max_tokens=ctx), f"prompt + max_tokens {ctx} > context {ctx}",
                  "context_length_exceeded")
    expect_status(400, bad(messages=[{"role": "user", "content": "x" * (ctx + 10)}]), "prompt alone beyond context",
                  "context_length_exceeded")
    expect_status(400, lambda: c.completions.create(model="kiln", prompt="hi", max_tokens=ctx),
                  "completions: prompt + max_tokens beyond context", "context_length_exceeded")
    expect_status(404, lambda: c.models.retrieve("nope"), "GET /v1/models/nope")
    raw_status("GET", base + "/v1/nothing", 404, "unknown path")
    raw_status("GET", base + "/v1/chat/completions", 404, "GET on a POST route")
    check(chat(c, q, max_tokens=5).choices[0].message is not None, "the server serves after the errors")

    # 16 parallel streaming clients: all complete, each text equals the same request alone.
    prompts = [(f"Question {i}: what is {i} plus {i}?", 100 + i) for i in range(16)]
    t0 = time.time()
    with cf.ThreadPoolExecutor(16) as ex:
        together = list(ex.map(lambda p: stream_text(c, p[0], max_tokens=40, seed=p[1], temperature=1.0)[0][0],
                               prompts))
    t_par = time.time() - t0
    t0 = time.time()
    alone = [chat(c, p, max_tokens=40, seed=s, temperature=1.0).choices[0].message.content for p, s in prompts]
    t_seq = time.time() - t0
    same = sum(a == b for a, b in zip(together, alone))
    print(f"16 parallel streaming clients: {same}/16 equal to the request alone "
          f"({t_par:.2f} s together, {t_seq:.2f} s one at a time)")
    for i, (a, b) in enumerate(zip(together, alone)):
        check(a == b, f"client {i}: batched {a!r} != alone {b!r}")
    print(f"  reply lengths: {[len(t) for t in together]}")
    check(sum(len(t) > 0 for t in together) >= 12, "most replies are empty")
    h = requests.get(base + "/health").json()
    check(h["live_rows"] == 0 and h["queued_rows"] == 0, f"rows left behind: {h}")


def sse_socket(base, body, key, events=4):
    """A raw streaming request; returns the socket after the first `events` SSE events."""
    url = urllib.parse.urlparse(base)
    s = socket.create_connection((url.hostname, url.port))
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Authorization: Bearer {key}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    buf = b""
    while buf.count(b"data: ") < events:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return s, buf


def small_server(base, key):
    c = client(base, key)
    print("auth:")
    expect_status(401, lambda: client(base, "wrong").chat.completions.create(
        model="kiln", messages=[{"role": "user", "content": "hi"}]), "wrong key", "invalid_api_key")
    raw_status("POST", base + "/v1/chat/completions", 401, "no key", json={"messages": [{"role": "user", "content": "x"}]})
    raw_status("POST", base + "/v1/completions", 401, "no key (completions)", json={"prompt": "x"})
    raw_status("GET", base + "/health", 200, "/health without a key")
    raw_status("GET", base + "/v1/models", 200, "/v1/models without a key")
    check(len(chat(c, "hi", max_tokens=3).choices) == 1, "the right key is accepted")

    # A client that disconnects mid-stream frees its slot: with 1 slot, B waits in the queue while
    # A streams (600 tokens), A hangs up after 3 chunks, and B must join the batch within one step
    # of A's rows being dropped, long before A's 600 tokens.
    h0 = requests.get(base + "/health").json()
    s, first = sse_socket(base, {"messages": [{"role": "user", "content": "Tell me a long story."}],
                                 "max_tokens": 600, "stream": True, "seed": 1}, key)
    check(first.startswith(b"HTTP/1.1 200") and first.count(b"data: ") >= 4, f"A did not stream: {first[:200]!r}")
    result = {}
    tb = threading.Thread(target=lambda: result.update(r=chat(c, "And you?", max_tokens=5, seed=2)))
    tb.start()
    for _ in range(500):
        if requests.get(base + "/health").json()["queued_rows"] == 1:
            break
        time.sleep(0.002)
    hq = requests.get(base + "/health").json()
    check(hq["queued_rows"] == 1 and hq["live_rows"] == 1, f"B is not queued behind A: {hq}")
    s.close()
    t_close = time.time()
    tb.join(60)
    t_b = time.time() - t_close
    h = requests.get(base + "/health").json()
    a_steps = h["last_cancel_step"] - h0["steps"]
    print(f"disconnect: A cancelled after {a_steps} of its 600 steps, B admitted at step {h['last_admit_step']} "
          f"(A dropped at step {h['last_cancel_step']}); B done {t_b * 1000:.0f} ms after A hung up; health {h}")
    check("r" in result and result["r"].choices[0].finish_reason in ("length", "stop"), "B did not complete")
    check(h["cancelled"] == h0["cancelled"] + 1, "A was not cancelled")
    check(0 <= h["last_admit_step"] - h["last_cancel_step"] <= 1,
          "B did not start within one decode step of A's slot being freed")
    check(a_steps < 300, f"A ran {a_steps} steps: its slot was not freed at once")
    check(h["live_rows"] == 0 and h["queued_rows"] == 0, f"rows left behind: {h}")

    # A burst beyond slots + queue (1 + 1): 12 streaming requests at once; the extra ones get 503
    # in OpenAI's shape, the others complete, and the server keeps serving.
    def one(i):
        try:
            return stream_text(c, f"burst {i}", max_tokens=40, seed=i)[1][0]
        except openai.APIStatusError as e:
            return e.status_code
    with cf.ThreadPoolExecutor(12) as ex:
        outs = list(ex.map(one, range(12)))
    n503 = sum(o == 503 for o in outs)
    print(f"burst of 12 on 1 slot + 1 queue place: {outs}")
    check(n503 >= 1 and all(o in (503, "length", "stop") for o in outs), f"burst outcomes {outs}")
    check(len(outs) - n503 >= 1, "no request of the burst was served")
    held = [sse_socket(base, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 600, "stream": True,
                              "seed": 9}, key, events=0)[0] for _ in range(2)]
    for _ in range(500):
        h = requests.get(base + "/health").json()
        if h["live_rows"] == 1 and h["queued_rows"] == 1:
            break
        time.sleep(0.002)
    check(h["live_rows"] == 1 and h["queued_rows"] == 1, f"two streams do not fill 1 slot + 1 queue place: {h}")
    raw_status("POST", base + "/v1/chat/completions", 503, "a third stream on 1 slot + 1 queue place",
               json={"messages": [{"role": "user", "content": "x"}]}, headers={"Authorization": f"Bearer {key}"})
    for s in held:
        s.close()
    time.sleep(0.5)
    for _ in range(200):
        if requests.get(base + "/health").json()["live_rows"] == 0:
            break
        time.sleep(0.05)
    check(chat(c, "still there?", max_tokens=5).choices[0].finish_reason in ("length", "stop"),
          "the server stopped serving after the burst")


if __name__ == "__main__":
    if sys.argv[1] == "main":
        main_server(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        small_server(sys.argv[2], sys.argv[3])
    print(f"ok: {ok_count} checks")
