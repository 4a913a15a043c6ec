# PyTorch generation loop with a KV cache for kiln's GPT, independent of kiln's C++: reads a
# model.safetensors of kiln's parameters (a checkpoint's, or bench_generate's) and its shape, and
# decodes greedily with per-layer key/value caches (prefill with causal SDPA, then one token at a
# time over the cached keys). Used by bench/generate.sh (throughput beside kiln's engine).
# Usage: generate_ref.py MODEL.safetensors SHAPE.json PROMPTS.safetensors [threads] [cpu|cuda]
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_ref import GPT, apply_rotary, norm  # noqa: E402


class Cached:
    """Greedy generation for a gpt_ref.GPT with a (B, H_kv, T, D) key and value cache per layer."""

    def __init__(self, model, max_len):
        self.m = model
        c = model.c
        D = c["head_dim"]
        inv_freq = 1.0 / (c["rope_base"] ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        dev = model.lm_head.weight.device
        self.cos = freqs.cos()[None, :, None, :].to(dev)
        self.sin = freqs.sin()[None, :, None, :].to(dev)
        self.max_len = max_len

    def forward(self, idx, pos):
        """idx (B, T) at positions pos..pos+T-1; returns the last position's logits (B, V)."""
        m, c = self.m, self.m.c
        B, T = idx.shape
        cos, sin = self.cos[:, pos:pos + T], self.sin[:, pos:pos + T]
        x = norm(m.transformer.wte(idx))
        for i, blk in enumerate(m.transformer.h):
            a = blk.attn
            h = norm(x)
            q = a.c_q(h).view(B, T, a.n_head, a.head_dim)
            k = a.c_k(h).view(B, T, a.n_kv_head, a.head_dim)
            v = a.c_v(h).view(B, T, a.n_kv_head, a.head_dim)
            q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            if pos == 0:
                self.k[i] = torch.zeros(B, a.n_kv_head, self.max_len, a.head_dim, device=x.device, dtype=k.dtype)
                self.v[i] = torch.zeros_like(self.k[i])
            self.k[i][:, :, pos:pos + T] = k
            self.v[i][:, :, pos:pos + T] = v
            K, V = self.k[i][:, :, :pos + T], self.v[i][:, :, :pos + T]
            gqa = a.n_kv_head != a.n_head
            if T > 1:  # prefill of an empty cache: plain causal attention
                y = F.scaled_dot_product_attention(q, K, V, is_causal=True, enable_gqa=gqa)
            else:
                y = F.scaled_dot_product_attention(q, K, V, enable_gqa=gqa)
            x = x + a.c_proj(y.transpose(1, 2).reshape(B, T, -1))
            x = x + blk.mlp(norm(x))
        logits = m.lm_head(norm(x[:, -1]))[..., :c["vocab_size"]].float()
        s = c["softcap"]
        return s * torch.tanh(logits / s)

    def generate(self, prompt, n):
        L = len(self.m.transformer.h)
        self.k, self.v = [None] * L, [None] * L
        logits = self.forward(prompt, 0)
        pos, out = prompt.size(1), []
        for _ in range(n):
            nxt = logits.argmax(-1, keepdim=True)
            out.append(nxt)
            if len(out) == n:
                break
            logits = self.forward(nxt, pos)
            pos += 1
        return torch.cat(out, 1)


def main():
    path, shape, prompts = sys.argv[1], sys.argv[2], sys.argv[3]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    dev = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
    torch.set_num_threads(threads)
    from safetensors.torch import load_file
    c = json.load(open(shape))
    model = GPT(c)
    model.load_state_dict(load_file(path), strict=True)
    model.to(dev).eval()
    P, N = min(128, c["seq_len"]), 128
    g = torch.Generator().manual_seed(1)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    gen = Cached(model, P + N + 1)
    with torch.no_grad():
        for rep in range(2):
            idx = torch.randint(0, min(256, c["vocab_size"]), (16, P), generator=g).to(dev)
            sync()
            t0 = time.perf_counter()
            gen.k, gen.v = [None] * c["n_layer"], [None] * c["n_layer"]
            gen.forward(idx, 0)
            sync()
            if rep == 1:
                print(f"pytorch prefill B=16 tok_per_s={16 * P / (time.perf_counter() - t0):.0f}")
        all_prompts = load_file(prompts)["prompts"].to(dev)
        for B in (1, 16):
            idx = all_prompts[:B]
            gen.generate(idx[:, :8], 8)  # warm-up
            sync()
            t0 = time.perf_counter()
            gen.k, gen.v = [None] * c["n_layer"], [None] * c["n_layer"]
            logits = gen.forward(idx, 0)
            sync()
            t1 = time.perf_counter()
            pos, nxt = P, logits.argmax(-1, keepdim=True)
            out = [nxt]
            for _ in range(N - 1):
                logits = gen.forward(nxt, pos)
                pos += 1
                nxt = logits.argmax(-1, keepdim=True)
                out.append(nxt)
            sync()
            dt = time.perf_counter() - t1
            print(f"pytorch cached B={B} decode tok_per_s={B * (N - 1) / dt:.0f} (prefill {t1 - t0:.3f}s)")
            if B == 1:
                print("pytorch ids B=1: " + " ".join(str(int(t)) for t in torch.cat(out, 1)[0]))


if __name__ == "__main__":
    main()
