"""tiktoken's GPT-2 encoding, the reference for kiln's GPT-2 tokenizer (tests/unit/test_gpt2_tokenizer.cpp).

Builds tiktoken.Encoding from the same encoder.json + vocab.bpe that kiln imports (tiktoken's own
data_gym_to_mergeable_bpe_ranks and its r50k_base split pattern, <|endoftext|> = 50256), then encodes
every UTF-8 text file under DATA_DIR (the first CAP bytes, cut after the last newline) and N random
Unicode strings. Random code points are drawn from characters assigned in Python's Unicode database
(14.0, the version of the build's PCRE2 tables; tiktoken's regex crate knows newer characters).
Usage:
    python3 gpt2_tokenizer_ref.py ENCODER_JSON VOCAB_BPE DATA_DIR CAP N_RANDOM SEED OUT.json
writes [{"name": ..., "text": ..., "ids": [...]}, ...]. Needs: tiktoken.
"""
import json
import os
import random
import sys
import unicodedata

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str


def encoding(encoder_json, vocab_bpe):
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=vocab_bpe, encoder_json_file=encoder_json)
    return tiktoken.Encoding("gpt2-files", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def text_files(root, cap):
    for dirpath, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            path = os.path.join(dirpath, n)
            with open(path, "rb") as f:
                raw = f.read(cap)
            if len(raw) == cap and b"\n" in raw:
                raw = raw[: raw.rindex(b"\n") + 1]
            try:
                yield os.path.relpath(path, root), raw.decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary (.gz, ...): not a text file


def assigned(rng):
    while True:
        c = rng.randrange(0x110000)
        if 0xD800 <= c < 0xE000:
            continue
        if unicodedata.category(chr(c)) != "Cn":
            return chr(c)


# Pieces that exercise the split pattern: contractions, spaces before words/numbers/punctuation,
# whitespace runs before letters, newlines, non-ASCII spaces and digits, emoji, combining marks.
PIECES = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", " ", "  ", "   ", "\n", "\r\n", "\t", "\u00a0", "\u3000",
          "\u2028", "12", "345", "\u0663\u0664", "\u00bd", "Hello", " world", "caf\u00e9", "\u00e9\u0301", "!!",
          " ...", "\U0001F600", "\U0001F468\u200d\U0001F469", "\u4e2d\u6587", "<|endoftext|>", "x", "'", "\ufffd"]


def random_string(rng):
    parts = []
    for _ in range(rng.randrange(0, 40)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(PIECES))
        elif r < 0.7:
            parts.append(chr(rng.randrange(32, 127)))
        else:
            parts.append(assigned(rng))
    return "".join(parts)


def main():
    encoder_json, vocab_bpe, data_dir, cap, n_random, seed, out = sys.argv[1:8]
    enc = encoding(encoder_json, vocab_bpe)
    cases = [{"name": name, "text": text, "ids": enc.encode_ordinary(text)}
             for name, text in text_files(data_dir, int(cap))]
    rng = random.Random(int(seed))
    for i in range(int(n_random)):
        s = random_string(rng)
        cases.append({"name": "random %d" % i, "text": s, "ids": enc.encode_ordinary(s)})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
