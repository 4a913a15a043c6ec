"""Reference for kiln's best-fit pretraining rows (data.layout bestfit), written from the rule in
nanochat's dev/LOG.md ("BestFit-Crop") and docstring at commit 92d63d4, not from kiln's code:

  documents enter a buffer in data order, 128 at a time, whenever it holds fewer than 1000;
  each row of T+1 tokens is filled by taking the LONGEST buffered document that fits in the room
  left (the earliest one among equally long); when none fits, the SHORTEST buffered document
  (earliest among equals) is cut to the room left and the rest of it is thrown away.

Documents come from the HDF5 shards themselves (h5py: /tokens and /doc_offsets, shards in the
order given, then again from the first: epochs), empty documents skipped.

usage: bestfit_ref.py ROW_TOKENS NUM_ROWS OUT.json SHARD.h5...
OUT.json: {"rows": [[token, ...], ...], "cropped": [tokens cut from each row's documents, ...]}
"""
import json
import sys

import h5py
import numpy as np

BUFFER, REFILL = 1000, 128


def documents(paths):
    docs = []
    for p in paths:
        with h5py.File(p, "r") as f:
            toks = np.asarray(f["tokens"][:], dtype=np.int64)
            off = np.asarray(f["doc_offsets"][:], dtype=np.int64)
        for a, b in zip(off[:-1], off[1:]):
            if b > a:
                docs.append(toks[a:b].tolist())
    return docs


def rows(docs, row_tokens, n):
    buf = []          # documents (token lists), oldest first
    serial = 0        # how many documents have entered the buffer so far
    for _ in range(n):
        row, cut = [], 0
        while len(row) < row_tokens:
            while len(buf) < BUFFER:
                for _ in range(REFILL):
                    buf.append(docs[serial % len(docs)])
                    serial += 1
            room = row_tokens - len(row)
            fits = [i for i, d in enumerate(buf) if len(d) <= room]
            if fits:
                longest = max(len(buf[i]) for i in fits)
                i = next(i for i in fits if len(buf[i]) == longest)
                row += buf.pop(i)
            else:
                shortest = min(len(d) for d in buf)
                i = next(i for i, d in enumerate(buf) if len(d) == shortest)
                d = buf.pop(i)
                row += d[:room]
                cut += len(d) - room
        assert len(row) == row_tokens
        yield row, cut


def main():
    row_tokens, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    docs = documents(sys.argv[4:])
    got = list(rows(docs, row_tokens, n))
    with open(out, "w") as f:
        json.dump({"rows": [r for r, _ in got], "cropped": [c for _, c in got]}, f)


if __name__ == "__main__":
    main()
