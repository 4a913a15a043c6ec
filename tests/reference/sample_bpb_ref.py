# Independent checks of ./sample and of the Trainer's validation bits per byte, from the formulas
# and tests/reference/gpt_ref.py (never kiln's code):
#   bpb  STEP_DIR TOKENIZER.json VAL.h5 B T BATCHES: val bpb of the checkpoint's weights on the
#        Trainer's validation rows (window w = tokens[w*T : w*T+T+1], B rows per batch) = sum of
#        the nats of targets with a byte length > 0 / (ln 2 * their bytes); prints it.
#   greedy STEP_DIR START N (byte-level tokenizer: ids 0..255 are the bytes, then the 9 specials,
#        <|bos|> = 256): greedy continuation of <|bos|> + START's bytes for N tokens (stops at
#        <|bos|>), full recompute each token; prints the text; stops early (and says so on stderr)
#        where the top two logits are closer than 1e-4, since fp32 summation order may flip them.
#   mc   STEP_DIR DUMP.jsonl (./eval --dump-examples, byte-level tokenizer): for each multiple-choice
#        prompt, the answer letter with the largest logit after its last token, compared with
#        kiln's prediction (near ties skipped); fails unless the letters vary.
import json
import math
import os
import re
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_ref import GPT  # noqa: E402


SPECIALS = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
            "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"]


def load(step_dir, vocab_size=265, positions=None):
    """positions: the rotary table's length (default the config's seq_len; nanochat's is 10x)."""
    meta = json.load(open(os.path.join(step_dir, "meta.json")))
    cfg = meta["config"]
    model_sec = cfg[cfg.index("model:"):]
    def key(k, cast):
        return cast(re.search(r"\n\s+" + k + r":\s*([-0-9.eE+]+)", model_sec).group(1))
    sd = load_file(os.path.join(step_dir, "model.safetensors"))
    n_embd = sd["transformer.wte.weight"].shape[1]
    n_head = key("n_head", int) or max(1, math.ceil(n_embd / 128))
    n_kv = key("n_kv_head", int) or n_head
    c = dict(n_layer=len({k.split(".")[2] for k in sd if k.startswith("transformer.h.")}), n_embd=n_embd,
             n_head=n_head, n_kv_head=n_kv, head_dim=n_embd // n_head, seq_len=key("seq_len", int),
             vocab_size=vocab_size, padded_vocab_size=sd["transformer.wte.weight"].shape[0],
             softcap=key("softcap", float), rope_base=key("rope_base", float))
    if positions:
        c["seq_len"] = positions
    m = GPT(c)
    m.load_state_dict(sd, strict=True)
    return m.eval()


def bpb(step_dir, tok_path, shard, B, T, batches):
    import h5py
    tok = json.load(open(tok_path))
    tb = torch.tensor(tok["token_bytes"], dtype=torch.float64)
    tokens = torch.from_numpy(h5py.File(shard, "r")["tokens"][:].astype("int64"))
    m = load(step_dir, tok["vocab_size"])
    nats = nbytes = 0.0
    with torch.no_grad():
        for w0 in range(0, B * batches, B):
            rows = torch.stack([tokens[w * T:w * T + T + 1] for w in range(w0, w0 + B)])
            per = m(rows[:, :-1], rows[:, 1:], reduction="none").double().view(B, T)
            b = tb[rows[:, 1:]]
            nats += (per * (b > 0)).sum().item()
            nbytes += b.sum().item()
    print(f"{nats / (math.log(2) * nbytes):.9f}")


def greedy(step_dir, start, n):
    m = load(step_dir)
    ids = [256] + list(start.encode())
    out = []
    with torch.no_grad():
        for i in range(n):
            logits = m(torch.tensor([ids]))[0, -1]
            top = torch.topk(logits, 2).values
            if (top[0] - top[1]).item() < 1e-4:
                print(f"near tie after {i} tokens: compare the prefix", file=sys.stderr)
                break
            nxt = int(logits.argmax())
            if nxt == 256:
                break
            ids.append(nxt)
            out.append(bytes([nxt]) if nxt < 256 else SPECIALS[nxt - 256].encode())
    sys.stdout.buffer.write(start.encode() + b"".join(out))


def mc(step_dir, dump):
    """./eval --dump-examples lines: the letter with the largest logit after the whole prompt."""
    exs = [json.loads(line) for line in open(dump)]
    # Prompts may be longer than seq_len (kiln's rotary table is 10x it, as nanochat's): a table
    # as long as the longest prompt gives the same angles at every position used.
    m = load(step_dir, positions=max(len(ex["prompt_ids"]) for ex in exs))
    agree = ties = 0
    worst = 0.0
    preds = []
    with torch.no_grad():
        for ex in exs:
            logits = m(torch.tensor([ex["prompt_ids"]]))[0, -1][ex["letter_ids"]]
            # The scores themselves, not only their argmax: a near-uniform model picks the same
            # letter at a wrong position, but not with the same logits (issue 19, item 21).
            diff = (logits - torch.tensor(ex["letter_logits"])).abs().max().item()
            if diff > 1e-3:
                print(f"{ex['id']}: kiln's letter logits {ex['letter_logits']} differ from the reference's "
                      f"last-position logits {logits.tolist()} by {diff:.2e}", file=sys.stderr)
                sys.exit(1)
            worst = max(worst, diff)
            top = torch.topk(logits, 2).values
            want = ex["letters"][int(logits.argmax())]
            preds.append(want)
            if (top[0] - top[1]).item() < 1e-4:
                ties += 1  # fp32 summation order may flip a near tie: not compared
                continue
            if want != ex["pred"]:
                print(f"{ex['id']}: kiln predicted {ex['pred']}, the reference {want} ({logits.tolist()})", file=sys.stderr)
                sys.exit(1)
            agree += 1
    print(f"{agree} predictions agree ({ties} near ties skipped), letter logits within {worst:.1e}; "
          f"reference letters {''.join(preds)}")
    if len(set(preds)) < 2 or agree < 0.8 * len(preds):
        sys.exit("too few distinct or comparable predictions to check the logit position")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "bpb":
        bpb(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    elif sys.argv[1] == "mc":
        mc(sys.argv[2], sys.argv[3])
    else:
        greedy(sys.argv[2], sys.argv[3], int(sys.argv[4]))
