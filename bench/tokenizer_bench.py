"""Tokenizer bench (reference side): rustbpe training time, then tiktoken encode throughput on one
thread and on all cores, on the same text and documents as bench/tokenizer_bench.cpp. Also says
whether rustbpe learned the same merges as kiln (kiln's tokenizer JSON is passed in), and tiktoken's
time on one unbroken run of letters of 0.25, 1 and 4 MB (the same bytes as the C++ side).
Usage: python3 tokenizer_bench.py TEXT VOCAB KILN_TOKENIZER_JSON   (needs tiktoken, rustbpe)
"""
import json
import os
import sys
import time

import rustbpe
import tiktoken

PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""


def main():
    path, vocab, kiln_json = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    text = open(path, encoding="utf-8").read()
    raw = text.encode("utf-8")
    docs, pos = [], 0
    while pos < len(text):
        e = text.find("\n\n", pos)
        e = len(text) if e < 0 else e + 2
        docs.append(text[pos:e])
        pos = e
    t0 = time.perf_counter()
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(iter([text]), vocab - 9, pattern=PATTERN)
    train_s = time.perf_counter() - t0
    ranks = {bytes(k): v for k, v in bpe.get_mergeable_ranks()}
    enc = tiktoken.Encoding(name="bench", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={})
    mb = len(raw) / 1e6
    t0 = time.perf_counter()
    n1 = sum(len(x) for x in enc.encode_ordinary_batch(docs, num_threads=1))
    one_s = time.perf_counter() - t0
    cores = os.cpu_count()
    t0 = time.perf_counter()
    n2 = sum(len(x) for x in enc.encode_ordinary_batch(docs, num_threads=cores))
    all_s = time.perf_counter() - t0
    assert n1 == n2
    # kiln's merges as byte strings, in rank order, against rustbpe's ranks.
    k = json.load(open(kiln_json))
    tb = [bytes([i]) for i in range(256)]
    for a, b in k["merges"]:
        tb.append(tb[a] + tb[b])
    same = all(ranks.get(tb[256 + r]) == 256 + r for r in range(len(k["merges"])))
    print(f"rustbpe train {train_s:.2f} s | tiktoken encode 1 thread {mb / one_s:.2f} MB/s | "
          f"{cores} threads {mb / all_s:.2f} MB/s | {len(raw) / n1:.3f} bytes/token | "
          f"same merges as kiln: {'yes' if same else 'no'}")
    letters = "".join(c for c in text if ("a" <= c <= "z") or ("A" <= c <= "Z"))
    while letters and len(letters) < (4 << 20):
        letters += letters
    for kb in (256, 1024, 4096) if letters else ():
        t0 = time.perf_counter()
        n = len(enc.encode_ordinary(letters[: kb << 10]))
        print(f"tiktoken one run of letters {kb / 1024:5.2f} MB: encode {time.perf_counter() - t0:.3f} s ({n} tokens)")


if __name__ == "__main__":
    main()
