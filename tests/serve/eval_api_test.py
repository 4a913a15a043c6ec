"""./serve's evaluation API (issue 23), checked against independent references: the logprobs of
/v1/completions (echo, generated tokens, top alternatives) and of chat equal a PyTorch log-softmax
of the same checkpoint (tests/reference/gpt_ref.py, no kiln code) within 1e-4; the prompt forms
(string, list of strings, token ids, list of id lists) give one choice per prompt; text_offset
indexes the text by characters across a multi-byte character; /tokenize and /detokenize agree with
the reference BPE; /tokenizer_info's chat template renders what chat feeds the model; /metrics is
parsed by prometheus_client and its counters move by exactly what the requests add; every new field
refused as an attacker would send it (400 with a message, the server alive after).
Usage: eval_api_test.py main URL TOK_JSON STEP_DIR | key URL KEY"""
import json
import math
import os
import sys

import requests
import torch

import openai_client_test as client_test  # check() and its count; puts tests/reference on sys.path
from openai_client_test import bpe_reference, check
from sample_bpb_ref import load  # noqa: E402


def post(base, path, body, status=200, **kw):
    r = requests.post(base + path, json=body, timeout=60, **kw)
    check(r.status_code == status, f"POST {path} {json.dumps(body)[:200]}: HTTP {r.status_code} != {status}: {r.text[:300]}")
    return r.json()


class Vocab:
    """Token id <-> bytes from the tokenizer file (bytes, then merges, then specials)."""

    def __init__(self, tok):
        self.bytes = {i: bytes([i]) for i in range(256)}
        for k, (a, b) in enumerate(tok["merges"]):
            self.bytes[256 + k] = self.bytes[a] + self.bytes[b]
        for name, i in tok["special_tokens"].items():
            self.bytes[i] = name.encode()
        self.merges = [tuple(m) for m in tok["merges"]]
        self.specials = tok["special_tokens"]
        self.by_string = {self.string(i): i for i in self.bytes}

    def string(self, i):
        b = self.bytes[i]
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes:" + "".join(f"\\x{c:02x}" for c in b)

    def encode(self, text):
        return bpe_reference.encode(text, self.merges)


def ref_logprobs(model, ids):
    """log_softmax of the reference model's logits: row t is the distribution of token t+1."""
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids]))[0].double(), -1)


def check_against_ref(lp, V, model, ids, first, top, what):
    """token_logprobs[i] (i >= first) = reference logprob of ids[i]; the top alternatives too."""
    ref = ref_logprobs(model, ids)
    worst = 0.0
    for i in range(first, len(ids)):
        got = lp["token_logprobs"][i]
        want = ref[i - 1, ids[i]].item()
        worst = max(worst, abs(got - want))
        alts = lp["top_logprobs"][i]
        check(len(alts) == min(top, ref.shape[1]), f"{what}: {len(alts)} alternatives at {i}, want {top}")
        want_top = torch.topk(ref[i - 1], top)
        for v, j in zip(want_top.values.tolist(), want_top.indices.tolist()):
            s = V.string(j)
            # a near-tie may order two alternatives differently: compare by token, not rank
            if s in alts:
                check(abs(alts[s] - v) <= 1e-4, f"{what}: alternative {s!r} at {i}: {alts[s]} vs {v}")
        kth = want_top.values[-1].item()
        for s, v in alts.items():
            check(v >= kth - 1e-4, f"{what}: alternative {s!r} at {i} ({v}) is not in the reference top {top}")
    check(worst <= 1e-4, f"{what}: logprobs differ from the reference by {worst}")
    return worst


def main_server(base, tok_json, step_dir):
    tok = json.load(open(tok_json))
    V = Vocab(tok)
    bos = V.specials["<|bos|>"]
    model = load(step_dir, len(V.bytes), positions=640)
    torch.manual_seed(0)

    # ---- echo + logprobs: the prompt's logprobs and the generated tokens' (temperature 0.5: the
    # logprobs are the model's, before temperature), against the reference.
    text = "First Citizen: héllo, what say you?"
    prompt = [bos] + V.encode(text)
    r = post(base, "/v1/completions", {"prompt": prompt, "echo": True, "logprobs": 5, "max_tokens": 12,
                                       "temperature": 0.5, "seed": 3})
    ch = r["choices"][0]
    lp = ch["logprobs"]
    toks = lp["tokens"]
    ids = [V.by_string[s] for s in toks]
    check(ids[:len(prompt)] == prompt, f"echo: the echoed tokens {toks[:len(prompt)]} are not the prompt's")
    check(len(ids) > len(prompt), "echo: no generated tokens after the prompt")
    check(lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None, "echo: the first logprob is not null")
    worst = check_against_ref(lp, V, model, ids, 1, 5, "echo + generated (temperature 0.5)")
    print(f"echo + 12 generated tokens at temperature 0.5: max |logprob - reference| = {worst:.2e}")
    want_text = b"".join(V.bytes[i] for i in prompt).decode("utf-8", "replace")
    check(ch["text"].startswith(want_text), f"echo: text {ch['text']!r} does not start with the prompt")

    # text_offset: characters into the text (a partial character's byte counts as one, as Python's
    # decode with errors="replace"); each whole-character token is found at its offset.
    full = b""
    for i, (s, off) in enumerate(zip(toks, lp["text_offset"])):
        want = len(full.decode("utf-8", "replace"))
        check(off == want, f"text_offset[{i}] = {off} != {want} (token {s!r})")
        full += V.bytes[ids[i]]
    text_all = ch["text"]
    for s, off in zip(toks, lp["text_offset"]):
        if not s.startswith("bytes:") and not s.startswith("<|"):
            check(text_all[off:off + len(s)] == s, f"text[{off}:] does not start with the token {s!r}")
    check(any(s.startswith("bytes:") for s in toks), "the prompt's 'é' was not split into byte tokens")

    # max_tokens 0 scores without generating; the same numbers as with generation.
    r0 = post(base, "/v1/completions", {"prompt": prompt, "echo": True, "logprobs": 1, "max_tokens": 0})
    c0 = r0["choices"][0]
    check(c0["logprobs"]["tokens"] == toks[:len(prompt)], "max_tokens 0: the tokens are not the prompt's")
    check(r0["usage"]["completion_tokens"] == 0 and r0["usage"]["prompt_tokens"] == len(prompt), f"usage {r0['usage']}")
    check(all(abs(a - b) <= 1e-5 for a, b in zip(c0["logprobs"]["token_logprobs"][1:], lp["token_logprobs"][1:len(prompt)])),
          "max_tokens 0: prompt logprobs differ from those of the request that generates")

    # Generated tokens alone (no echo): logprobs of a greedy run are each the top alternative.
    rg = post(base, "/v1/completions", {"prompt": text, "logprobs": 3, "max_tokens": 8, "temperature": 0})
    g = rg["choices"][0]["logprobs"]
    gids = [V.by_string[s] for s in g["tokens"]]
    check(all(v == max(t.values()) for v, t in zip(g["token_logprobs"], g["top_logprobs"])),
          "greedy tokens are not their position's most likely token")
    check_against_ref(g | {"token_logprobs": [None] * len(prompt) + g["token_logprobs"],
                           "top_logprobs": [None] * len(prompt) + g["top_logprobs"]},
                      V, model, prompt + gids, len(prompt), 3, "generated, no echo")
    check(g["text_offset"][0] == len(b"".join(V.bytes[i] for i in prompt).decode("utf-8", "replace")),
          "without echo text_offset starts after the prompt")

    # ---- prompt forms: one choice per prompt, each equal to that prompt sent alone.
    a, b = "To be, or not", "Now is the winter"
    alone = [post(base, "/v1/completions", {"prompt": p, "max_tokens": 5, "temperature": 0, "logprobs": 0,
                                            "echo": True})["choices"][0] for p in (a, b)]
    for form, body in [("list of strings", [a, b]),
                       ("list of token-id lists", [[bos] + V.encode(a), [bos] + V.encode(b)])]:
        rr = post(base, "/v1/completions", {"prompt": body, "max_tokens": 5, "temperature": 0, "logprobs": 0,
                                            "echo": True})
        got = sorted(rr["choices"], key=lambda c: c["index"])
        check([c["index"] for c in got] == [0, 1], f"{form}: indices {[c['index'] for c in got]}")
        for c, w in zip(got, alone):
            check(c["text"] == w["text"] and c["logprobs"]["tokens"] == w["logprobs"]["tokens"],
                  f"{form}: choice {c['index']} {c['text']!r} != alone {w['text']!r}")
            check(max(abs(x - y) for x, y in zip(c["logprobs"]["token_logprobs"][1:], w["logprobs"]["token_logprobs"][1:])) <= 1e-5,
                  f"{form}: logprobs differ from the prompt alone")
        check(rr["usage"]["prompt_tokens"] == 2 + len(V.encode(a)) + len(V.encode(b)), f"{form}: usage {rr['usage']}")
    one = post(base, "/v1/completions", {"prompt": [bos] + V.encode(a), "max_tokens": 5, "temperature": 0})
    check(one["choices"][0]["text"] == alone[0]["text"][len(b"".join(V.bytes[i] for i in [bos] + V.encode(a)).decode()):],
          "a token-id prompt's completion differs from its string's")
    two = post(base, "/v1/completions", {"prompt": [a, b], "n": 2, "max_tokens": 3, "seed": 5})
    check(sorted(c["index"] for c in two["choices"]) == [0, 1, 2, 3], "2 prompts x n 2: four choices")
    # Streamed, a list of prompts ends each of its choices (then [DONE]).
    rs = requests.post(base + "/v1/completions", json={"prompt": [a, b], "max_tokens": 5, "temperature": 0,
                                                       "stream": True}, stream=True, timeout=60)
    texts, finished = {}, set()
    for line in rs.iter_lines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            c = json.loads(line[6:])["choices"][0]
            texts[c["index"]] = texts.get(c["index"], "") + c["text"]
            if c["finish_reason"]:
                finished.add(c["index"])
    check(finished == {0, 1} and [texts[0], texts[1]] == [post(base, "/v1/completions", {"prompt": p, "max_tokens": 5,
          "temperature": 0})["choices"][0]["text"] for p in (a, b)], f"streamed list of prompts: {texts} {finished}")

    # ---- chat logprobs: the chat API's shape, the reference's numbers.
    rc = post(base, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6,
                                             "logprobs": True, "top_logprobs": 2, "temperature": 0.7, "seed": 1})
    content = rc["choices"][0]["logprobs"]["content"]
    sp = V.specials
    chat_prompt = [bos, sp["<|user_start|>"]] + V.encode("hi") + [sp["<|user_end|>"], sp["<|assistant_start|>"]]
    cids = [V.by_string[e["token"]] for e in content]
    check(len(content) == rc["usage"]["completion_tokens"], "chat: one logprob entry per completion token")
    check(all(bytes(e["bytes"]) == V.bytes[i] for e, i in zip(content, cids)), "chat: bytes")
    as_completion = {"token_logprobs": [None] * len(chat_prompt) + [e["logprob"] for e in content],
                     "top_logprobs": [None] * len(chat_prompt) + [{t["token"]: t["logprob"] for t in e["top_logprobs"]}
                                                                   for e in content]}
    w = check_against_ref(as_completion, V, model, chat_prompt + cids, len(chat_prompt), 2, "chat logprobs")
    print(f"chat logprobs: max |logprob - reference| = {w:.2e}")

    # ---- token endpoints
    t = post(base, "/tokenize", {"prompt": text, "add_special_tokens": False})
    check(t["tokens"] == V.encode(text) and t["count"] == len(t["tokens"]), "/tokenize != the reference BPE")
    t2 = post(base, "/tokenize", {"prompt": text})
    check(t2["tokens"] == [bos] + V.encode(text), "/tokenize with add_special_tokens: <|bos|> first")
    check(post(base, "/tokenize", {"prompt": "<|bos|>", "add_special_tokens": False})["tokens"] == [bos],
          "/tokenize: a special's name is its id (lm-eval's eos_token_id)")
    check(post(base, "/detokenize", {"tokens": V.encode(text)})["prompt"] == text, "/detokenize round trip")
    info = requests.get(base + "/tokenizer_info", timeout=10).json()
    check(info["bos_token"] == "<|bos|>" and info["eos_token"] == "<|bos|>", f"/tokenizer_info {info}")
    import jinja2
    conv = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]
    rendered = jinja2.Environment().from_string(info["chat_template"]).render(messages=conv, add_generation_prompt=True)
    rids = post(base, "/tokenize", {"prompt": rendered, "add_special_tokens": False})["tokens"]
    want_ids = ([bos, sp["<|user_start|>"]] + V.encode("be brief\n\nhi") + [sp["<|user_end|>"], sp["<|assistant_start|>"]]
                + V.encode("hello") + [sp["<|assistant_end|>"], sp["<|user_start|>"]] + V.encode("bye")
                + [sp["<|user_end|>"], sp["<|assistant_start|>"]])
    check(rids == want_ids, f"the chat template renders {rendered!r}")
    usage = post(base, "/v1/chat/completions", {"messages": conv, "max_tokens": 1})["usage"]
    check(usage["prompt_tokens"] == len(want_ids), "chat's prompt and the template's differ in length")

    # ---- /metrics: counters move by exactly what a known sequence of requests adds.
    from prometheus_client.parser import text_string_to_metric_families

    def metrics():
        r = requests.get(base + "/metrics", timeout=10)
        check(r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), "/metrics")
        out = {}
        for fam in text_string_to_metric_families(r.text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    m0 = metrics()
    seq = [("/v1/completions", {"prompt": "abc", "max_tokens": 4, "temperature": 0, "logprobs": 0}),
           ("/v1/completions", {"prompt": ["de", "fgh"], "max_tokens": 3, "temperature": 0.5, "seed": 1, "logprobs": 0}),
           ("/v1/chat/completions", {"messages": [{"role": "user", "content": "yo"}], "max_tokens": 5, "seed": 2}),
           ("/v1/completions", {"prompt": "abc", "max_tokens": 0, "echo": True, "logprobs": 0})]
    gen = prompt_toks = rows_with_tokens = 0
    for path, body in seq:
        rr = post(base, path, body)
        gen += rr["usage"]["completion_tokens"]
        prompt_toks += rr["usage"]["prompt_tokens"]
        if path == "/v1/chat/completions":
            rows_with_tokens += rr["usage"]["completion_tokens"] > 0
        elif body["max_tokens"] > 0:  # the stop token's entry is no generated token
            rows_with_tokens += sum(1 for c in rr["choices"]
                                    if [s for s in c["logprobs"]["tokens"] if s not in ("<|bos|>", "<|assistant_end|>")])
    post(base, "/v1/completions", {"prompt": "x", "logprobs": 21}, status=400)  # refused: no counter moves
    m1 = metrics()
    d = lambda name, **lab: m1[(name, tuple(sorted(lab.items())))] - m0.get((name, tuple(sorted(lab.items()))), 0)  # noqa
    check(d("kiln_requests_total", endpoint="completions") == 3, "kiln_requests_total{completions} moved by "
          f"{d('kiln_requests_total', endpoint='completions')}, want 3")
    check(d("kiln_requests_total", endpoint="chat") == 1, "kiln_requests_total{chat}")
    check(d("kiln_prompt_tokens_total") == prompt_toks, f"prompt tokens moved by {d('kiln_prompt_tokens_total')}, want {prompt_toks}")
    check(d("kiln_generated_tokens_total") == gen, f"generated tokens moved by {d('kiln_generated_tokens_total')}, want {gen}")
    ttft = d("kiln_time_to_first_token_seconds_count")
    tpot = d("kiln_time_per_output_token_seconds_count")
    check(ttft == rows_with_tokens and tpot == gen - rows_with_tokens,
          f"histogram counts ttft {ttft} / per-token {tpot}, want {rows_with_tokens} / {gen - rows_with_tokens}")
    check(m1[("kiln_time_to_first_token_seconds_bucket", (("le", "+Inf"),))] == m1[("kiln_time_to_first_token_seconds_count", ())],
          "the +Inf bucket != count")
    check(m1[("kiln_busy_slots", ())] == 0 and m1[("kiln_queue_depth", ())] == 0, "busy slots / queue idle")
    print(f"/metrics: +3 completions, +1 chat, +{prompt_toks} prompt tokens, +{gen} generated, ttft {ttft}, per-token {tpot}")

    # ---- attacks on the new fields: 400 with a message naming the field; the server lives on.
    V_n = len(V.bytes)
    bad = [({"prompt": "a", "logprobs": 21}, "logprobs"), ({"prompt": "a", "logprobs": -1}, "logprobs"),
           ({"prompt": "a", "logprobs": "3"}, "logprobs"), ({"prompt": "a", "logprobs": True}, "logprobs"),
           ({"prompt": "a", "logprobs": 2 ** 70}, "logprobs"), ({"prompt": "a", "logprobs": 1.5}, "logprobs"),
           ({"prompt": "a", "echo": True, "stream": True}, "echo"), ({"prompt": "a", "echo": "yes"}, "echo"),
           ({"prompt": "a", "logprobs": 1, "stream": True}, "logprobs"),
           ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
           ({"prompt": [1, 2, V_n]}, "prompt"), ({"prompt": [-1]}, "prompt"), ({"prompt": [2 ** 64 - 1]}, "prompt"),
           ({"prompt": [1, 2.5]}, "prompt"), ({"prompt": [1, "a"]}, "prompt"), ({"prompt": [[1], "a"]}, "prompt"),
           ({"prompt": ["a", [1]]}, "prompt"), ({"prompt": [[[1]]]}, "prompt"), ({"prompt": []}, "prompt"),
           ({"prompt": [[]]}, "prompt"), ({"prompt": [{"a": 1}]}, "prompt"), ({"prompt": {"a": 1}}, "prompt"),
           ({"prompt": [1] * 641, "echo": True, "logprobs": 1, "max_tokens": 0}, "prompt"),
           ({"prompt": [1] * 640, "max_tokens": 1}, "prompt"),
           ({"prompt": [[1]] * 5}, "prompt"), ({"prompt": ["a"] * 5, "max_tokens": 1}, "prompt"),
           ({"prompt": ["a", "b"], "n": 3}, "prompt"),
           ({"prompt": "x" * 32001, "echo": True, "logprobs": 5, "max_tokens": 0}, "prompt"),
           ({"prompt": ["x" * 20000, "y" * 20000], "max_tokens": 1}, "prompt")]
    for body, param in bad:
        e = post(base, "/v1/completions", body, status=400)["error"]
        check(e["param"] == param and len(e["message"]) > 10, f"{json.dumps(body)[:80]}: {e}")
    chat_bad = [{"logprobs": 1}, {"logprobs": True, "top_logprobs": 21}, {"logprobs": True, "top_logprobs": -1},
                {"top_logprobs": 2}, {"logprobs": True, "stream": True}]
    for extra in chat_bad:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2} | extra
        e = post(base, "/v1/chat/completions", body, status=400)["error"]
        check(len(e["message"]) > 10, f"chat {extra}: {e}")
    for path, body in [("/tokenize", {}), ("/tokenize", {"prompt": 5}), ("/tokenize", {"prompt": "a", "add_special_tokens": 1}),
                       ("/detokenize", {}), ("/detokenize", {"tokens": [V_n]}), ("/detokenize", {"tokens": [-5]}),
                       ("/detokenize", {"tokens": [[1]]}), ("/detokenize", {"tokens": "abc"})]:
        e = post(base, path, body, status=400)["error"]
        check(len(e["message"]) > 10, f"{path} {body}: {e}")
    r = requests.post(base + "/tokenize", data="x" * 100, headers={"Content-Type": "text/plain"}, timeout=10)
    check(r.status_code == 415, f"/tokenize text/plain: {r.status_code}")
    r = requests.post(base + "/tokenize", data=b"{" + b"x" * (5 << 20), headers={"Content-Type": "application/json"}, timeout=30)
    check(r.status_code == 413, f"/tokenize 5 MiB: {r.status_code}")
    # The largest scoring request (a full context of ids, 20 alternatives each) answers.
    big = post(base, "/v1/completions", {"prompt": [bos] + [65] * 639, "echo": True, "logprobs": 20, "max_tokens": 0})
    check(len(big["choices"][0]["logprobs"]["tokens"]) == 640, "a full-context scoring request")
    check(requests.get(base + "/health", timeout=10).status_code == 200, "the server died")
    print(f"ok: {client_test.ok_count} checks")


def key_server(base, key):
    """With --api-key: the token endpoints need it, /metrics and /tokenizer_info stay open."""
    check(requests.post(base + "/tokenize", json={"prompt": "a"}, timeout=10).status_code == 401, "/tokenize without key")
    check(requests.post(base + "/detokenize", json={"tokens": [1]}, timeout=10).status_code == 401, "/detokenize without key")
    h = {"Authorization": f"Bearer {key}"}
    check(requests.post(base + "/tokenize", json={"prompt": "a"}, headers=h, timeout=10).status_code == 200, "/tokenize with key")
    check(requests.get(base + "/metrics", timeout=10).status_code == 200, "/metrics without key")
    check(requests.get(base + "/tokenizer_info", timeout=10).status_code == 200, "/tokenizer_info without key")
    r = requests.post(base + "/metrics", data="x", timeout=10)
    check(r.status_code == 405, f"POST /metrics: {r.status_code}")
    r = requests.post(base + "/tokenize", json={"prompt": "a"}, headers=h | {"Origin": "http://evil.example"}, timeout=10)
    check(r.status_code == 403, f"/tokenize cross-site: {r.status_code}")
    # Clients that hang up: their row leaves the batch within a second (1 slot).
    import socket
    import time
    host, port = base.split("//")[1].split(":")

    def hang_up(request, started):
        """Sends `request` on a raw socket, closes it once started() is true, and returns
        (/health before, /health after the row left, seconds from the close to the row gone)."""
        body = json.dumps(request).encode()
        before = requests.get(base + "/health", timeout=10).json()
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: " + host.encode() + b"\r\nAuthorization: Bearer "
                  + key.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body)
        for _ in range(200):
            if started():
                break
            time.sleep(0.005)
        s.close()
        t0 = time.time()
        while time.time() - t0 < 3:
            h = requests.get(base + "/health", timeout=10).json()
            if h["live_rows"] == 0:
                break
            time.sleep(0.02)
        return before, h, time.time() - t0

    # A non-streaming client, while its reply is generated.
    before, h, freed = hang_up({"prompt": "a", "max_tokens": 600, "temperature": 1.0},
                               lambda: requests.get(base + "/health", timeout=10).json()["live_rows"] == 1)
    check(h["live_rows"] == 0 and h["cancelled"] == before["cancelled"] + 1 and freed < 1.0,
          f"a non-streaming client that hung up: live_rows {h['live_rows']}, cancelled {h['cancelled']}, {freed:.2f} s")
    check(h["tokens"] - before["tokens"] < 600, "the hung-up request ran to its end")
    print(f"non-streaming disconnect: the row freed {freed:.2f} s after the client closed, "
          f"after {h['tokens'] - before['tokens']} of 600 tokens")
    # An echo (scoring) client, while its prompt is still being prefilled: this server feeds one
    # prompt token per step (--prefill-chunk 1), so a 600-token prompt takes 600 steps.
    def prefilled():
        m = requests.get(base + "/metrics", timeout=10).text
        return int(float(next(l.split()[1] for l in m.splitlines() if l.startswith("kiln_prefill_tokens_total "))))
    p0 = prefilled()
    before, h, freed = hang_up({"prompt": [65] * 600, "echo": True, "logprobs": 1, "max_tokens": 0},
                               lambda: prefilled() - p0 >= 20)
    fed = prefilled() - p0
    check(h["live_rows"] == 0 and h["cancelled"] == before["cancelled"] + 1 and freed < 1.0,
          f"an echo client that hung up mid-prefill: live_rows {h['live_rows']}, cancelled {h['cancelled']} "
          f"(before {before['cancelled']}), {freed:.2f} s, {fed} prompt tokens fed")
    check(20 <= fed < 550, f"the hung-up echo row was not stopped mid-prefill: {fed} prompt tokens fed")
    print(f"echo disconnect mid-prefill: the row freed {freed:.2f} s after the client closed, after {fed} prompt tokens")
    print(f"ok: {client_test.ok_count} checks (API key)")


if __name__ == "__main__":
    if sys.argv[1] == "main":
        main_server(*sys.argv[2:5])
    else:
        key_server(*sys.argv[2:4])
