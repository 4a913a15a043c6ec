"""./serve under load (issue 12): the same 16 streamed chat requests sent one at a time, then by 4
and by 16 concurrent clients (each client takes the next request when its last one is done), in
one run against one server. Prints per level: wall time, generated tokens/s, time to first token
(first content chunk) mean / p50 / max, the speedup over one at a time, and whether every reply
equals the one-at-a-time reply (per-row seeds: batching must not change a sampled text).

Usage: serve_bench.py BASE_URL [REQUESTS=16] [MAX_TOKENS=64] [--label NAME] [--engine TOK_PER_S]
--engine: the engine's batch-16 decode tok/s on the same model (bench_generate), for the goal
"16 clients >= 80% of it"; --label names the server in the summary line ("summary: {json}") that
bench/serve_bench.sh collects to print builds side by side.
"""
import json
import concurrent.futures as cf
import statistics
import sys
import time

import openai


def one(c, i, max_tokens):
    t0 = time.perf_counter()
    ttft, text, usage = None, "", None
    stream = c.chat.completions.create(
        model="kiln", messages=[{"role": "user", "content": f"Request {i}: tell me about the sea."}],
        max_tokens=max_tokens, temperature=1.0, seed=1000 + i, stream=True, stream_options={"include_usage": True})
    for ch in stream:
        if ch.usage is not None:
            usage = ch.usage
        for choice in ch.choices:
            if choice.delta.content:
                if ttft is None:
                    ttft = time.perf_counter() - t0
                text += choice.delta.content
    return ttft if ttft is not None else time.perf_counter() - t0, text, usage.completion_tokens


def level(c, clients, n, max_tokens):
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as ex:
        out = list(ex.map(lambda i: one(c, i, max_tokens), range(n)))
    return time.perf_counter() - t0, out


def main(base, n=16, max_tokens=64, label="kiln", engine=None):
    c = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=600)
    one(c, 0, 4)  # warm-up
    rows, ref = [], None
    for clients in (1, 4, 16):
        wall, out = level(c, clients, n, max_tokens)
        tokens = sum(o[2] for o in out)
        ttfts = [o[0] * 1000 for o in out]
        texts = [o[1] for o in out]
        if ref is None:
            ref = texts
        same = sum(a == b for a, b in zip(texts, ref))
        rows.append((clients, wall, tokens, tokens / wall, statistics.mean(ttfts), statistics.median(ttfts),
                     max(ttfts), same))
    base_tps = rows[0][3]
    print(f"\n{n} streamed chat requests of up to {max_tokens} tokens each, one server, one run\n")
    print("| clients | wall s | tokens | tokens/s | vs one at a time | TTFT mean ms | TTFT p50 ms | TTFT max ms |"
          " same text as alone |")
    print("|--------:|-------:|-------:|---------:|-----------------:|-------------:|------------:|------------:|"
          "-------------------:|")
    for clients, wall, tokens, tps, mean, p50, mx, same in rows:
        name = f"{clients} (one at a time)" if clients == 1 else str(clients)
        print(f"| {name} | {wall:.2f} | {tokens} | {tps:.0f} | {tps / base_tps:.2f}x | {mean:.0f} | {p50:.0f} |"
              f" {mx:.0f} | {same}/{n} |")
    tps = {r[0]: r[3] for r in rows}
    summary = {"label": label, "tok_s": tps, "x4": tps[4] / tps[1], "x16": tps[16] / tps[1],
               "same": min(r[7] for r in rows), "n": n, "ttft_p50_16": rows[-1][5]}
    if engine:
        summary["engine_b16"] = engine
        summary["of_engine"] = tps[16] / engine
    print("summary: " + json.dumps(summary))


if __name__ == "__main__":
    args, kw = [], {}
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--label":
            kw["label"] = next(it)
        elif a == "--engine":
            kw["engine"] = float(next(it))
        else:
            args.append(a)
    main(args[0], *(int(a) for a in args[1:]), **kw)
