"""Obviously-correct byte-level BPE, the reference for kiln's C++ tokenizer (tests/unit/test_tokenizer_reference.cpp).

Trains by recounting, after every merge, all pairs of every word that the merge changed (no delta
bookkeeping), with kiln's tie rule: the highest count wins, equal counts go to the smallest
(first id, second id) pair. Encodes
by repeatedly merging the lowest-ranked adjacent pair. Splits with the `regex` module (Unicode \\s
and \\p{..}, like PCRE2 with UCP). Usage:
    python3 bpe_reference.py TRAIN.txt VOCAB_SIZE HELDOUT.txt OUT.json
writes {"merges": [[a, b], ...], "ids": [...ids of HELDOUT...]}. Needs: regex.
"""
import json
import sys
from collections import Counter

import regex

PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
NUM_SPECIALS = 9


def chunks(text):
    return [m.group(0).encode("utf-8") for m in regex.finditer(PATTERN, text)]


def merge(word, pair, new_id):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def pair_counts(word):
    return Counter(zip(word, word[1:]))


def train(text, vocab_size):
    words = Counter(tuple(c) for c in chunks(text))
    counts = Counter()
    for w, n in words.items():
        for p, k in pair_counts(w).items():
            counts[p] += k * n
    merges = []
    for rank in range(vocab_size - 256 - NUM_SPECIALS):
        if not counts:
            break
        best = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
        merges.append(best)
        new_id = 256 + rank
        # Every word holding the pair is re-merged and its pairs recounted in full (merging is
        # one-to-one, so no two words collide).
        changed = [w for w in words if best[0] in w and best[1] in w]
        for w in changed:
            nw = merge(w, best, new_id)
            if nw == w:
                continue
            n = words.pop(w)
            words[nw] = n
            counts.subtract({p: k * n for p, k in pair_counts(w).items()})
            counts.update({p: k * n for p, k in pair_counts(nw).items()})
        counts = Counter({p: k for p, k in counts.items() if k > 0})
    return merges


def encode_chunk(c, rank):
    """The ids of one chunk's bytes c; rank: {(a, b): merge rank}."""
    w = tuple(c)
    while len(w) >= 2:
        pairs = [p for p in zip(w, w[1:]) if p in rank]
        if not pairs:
            break
        best = min(pairs, key=lambda p: rank[p])
        w = merge(w, best, 256 + rank[best])
    return w


def encode(text, merges):
    rank = {p: r for r, p in enumerate(merges)}
    ids = []
    for c in chunks(text):
        ids.extend(encode_chunk(c, rank))
    return ids


def main():
    train_path, vocab, held_path, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(train_path, encoding="utf-8", newline="") as f:
        merges = train(f.read(), vocab)
    with open(held_path, encoding="utf-8", newline="") as f:
        ids = encode(f.read(), merges)
    with open(out_path, "w") as f:
        json.dump({"merges": [list(m) for m in merges], "ids": ids}, f)


if __name__ == "__main__":
    main()
