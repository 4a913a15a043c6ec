# Behaviour check of the chat stages (issue 9): greedy answers of checkpoints to held-out GSM8K test
# prompts, scored for format: the share that end with <|assistant_end|> and hold a "#### <number>"
# line. Prompts are kiln's own renderings (./prepare --chat shards of the test set, cut after the
# first <|assistant_start|>); decoding uses tests/reference/gpt_ref.py (the PyTorch reference that
# the parity tests hold kiln's GPT to) with a KV cache, because kiln's ./sample recomputes the whole
# context per token. Byte-level tokenizers only (ids 0..255 are bytes).
# Usage: chat_format_eval.py --test SHARD.h5 --n 50 --max-len 512 CKPT_STEP_DIR...
import argparse
import json
import math
import os
import re
import sys

import h5py
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from gpt_ref import GPT, apply_rotary, norm  # noqa: E402


def load(step_dir, max_len):
    meta = json.load(open(f"{step_dir}/meta.json"))
    m = yaml.safe_load(meta["config"])["model"]
    tok = json.load(open(f"{step_dir}/tokenizer.json"))
    if tok["merges"]:
        sys.exit(f"{step_dir}: this check decodes byte-level tokenizers only (no merges)")
    w = load_file(f"{step_dir}/model.safetensors")
    width = m["width"] or 64 * m["depth"]
    n_head = m["n_head"] or math.ceil(width / 128)
    c = dict(n_layer=m["depth"], n_embd=width, n_head=n_head, n_kv_head=m["n_kv_head"] or n_head,
             head_dim=width // n_head, seq_len=max_len, vocab_size=tok["vocab_size"],
             padded_vocab_size=w["transformer.wte.weight"].shape[0], softcap=m["softcap"], rope_base=m["rope_base"])
    model = GPT(c)
    model.load_state_dict(w, strict=True)
    return model.eval(), tok["special_tokens"], meta


@torch.no_grad()
def forward_cached(model, ids, cache, pos):
    """ids (1, T) at positions pos..pos+T-1; cache: per layer (k, v) of the earlier positions."""
    T = ids.size(1)
    cos, sin = model.cos[:, pos:pos + T], model.sin[:, pos:pos + T]
    x = norm(model.transformer.wte(ids))
    for i, b in enumerate(model.transformer.h):
        a, h = b.attn, norm(x)
        q = a.c_q(h).view(1, T, a.n_head, a.head_dim)
        k = a.c_k(h).view(1, T, a.n_kv_head, a.head_dim)
        v = a.c_v(h).view(1, T, a.n_kv_head, a.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache[i] is not None:
            k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
        cache[i] = (k, v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, enable_gqa=a.n_kv_head != a.n_head)
        x = x + a.c_proj(y.transpose(1, 2).contiguous().view(1, T, -1))
        x = x + b.mlp(norm(x))
    logits = model.lm_head(norm(x))[..., :model.c["vocab_size"]].float()
    s = model.c["softcap"]
    return s * torch.tanh(logits / s) if s > 0 else logits


def greedy(model, prompt, max_len, stop):
    cache = [None] * model.c["n_layer"]
    logits = forward_cached(model, torch.tensor([prompt]), cache, 0)
    out, pos = [], len(prompt)
    while pos < max_len:
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        if nxt == stop:
            break
        logits = forward_cached(model, torch.tensor([[nxt]]), cache, pos)
        pos += 1
    return out


def prompts_from_shard(path, specials, n, max_prompt):
    with h5py.File(path, "r") as f:
        tokens, offs = f["tokens"][:], f["doc_offsets"][:]
    a_start = specials["<|assistant_start|>"]
    out = []
    for d in range(len(offs) - 1):
        doc = [int(t) for t in tokens[offs[d]:offs[d + 1]]]
        p = doc[:doc.index(a_start) + 1]
        if len(p) <= max_prompt:
            out.append(p)
        if len(out) == n:
            break
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--test", required=True)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--max-prompt", type=int, default=256)
    ap.add_argument("ckpts", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    line = re.compile(r"^#### (-?[0-9.,]+)\s*$", re.M)
    for ck in args.ckpts:
        model, sp, meta = load(ck, args.max_len)
        prompts = prompts_from_shard(args.test, sp, args.n, args.max_prompt)
        stop = sp["<|assistant_end|>"]
        ended = answered = both = 0
        example = ""
        for i, p in enumerate(prompts):
            out = greedy(model, p, args.max_len, stop)
            text = bytes(t for t in out if t < 256).decode("utf-8", "replace")
            e, h = out[-1:] == [stop], line.search(text) is not None
            ended, answered, both = ended + e, answered + h, both + (e and h)
            if i == 0:
                example = text
        n = len(prompts)
        print(f"{ck} (stage {meta.get('stage', 'pretrain')}, step {meta['step']}): {n} held-out GSM8K prompts: "
              f"ends with <|assistant_end|> {100 * ended / n:.0f}%, has a '#### <number>' line {100 * answered / n:.0f}%, "
              f"both {100 * both / n:.0f}% ({both}/{n})")
        print(f"  first answer: {example[:300]!r}")


if __name__ == "__main__":
    main()
