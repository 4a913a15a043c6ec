# Plain-PyTorch reference of kiln's GPT (nanochat V1), written from the spec
# and independent of kiln's C++: same parameter names, so it loads kiln's safetensors directly.
# Used by the parity gtest (run as a script) and by bench/train_step_ref.py (imported).
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary(x, cos, sin):
    # x (B, T, H, D); half split: rotate (x1, x2) by the angle in cos/sin (nanochat's convention)
    d = x.shape[3] // 2
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # bf16 under autocast, as kiln and nanochat
    x1, x2 = x[..., :d], x[..., d:]
    y1 = x1 * cos + x2 * sin
    y2 = x1 * (-sin) + x2 * cos
    return torch.cat([y1, y2], 3)


class Attn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = c["n_head"], c["n_kv_head"], c["head_dim"]
        C = c["n_embd"]
        self.c_q = nn.Linear(C, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(C, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(C, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(self.n_head * self.head_dim, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k = norm(q), norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv_head != self.n_head)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, -1))


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=False)
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn, self.mlp = Attn(c), Mlp(c)

    def forward(self, x, cos, sin):
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    """c: dict with n_layer, n_embd, n_head, n_kv_head, head_dim, seq_len, vocab_size,
    padded_vocab_size, softcap, rope_base."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["padded_vocab_size"], c["n_embd"]),
            h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])])))
        self.lm_head = nn.Linear(c["n_embd"], c["padded_vocab_size"], bias=False)
        D = c["head_dim"]
        inv_freq = 1.0 / (c["rope_base"] ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
        freqs = torch.outer(torch.arange(c["seq_len"], dtype=torch.float32), inv_freq)
        self.register_buffer("cos", freqs.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", freqs.sin()[None, :, None, :], persistent=False)

    def forward(self, idx, targets=None, reduction="mean"):
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = norm(self.transformer.wte(idx))
        for b in self.transformer.h:
            x = b(x, cos, sin)
        x = norm(x)
        logits = self.lm_head(x)[..., :self.c["vocab_size"]].float()
        s = self.c["softcap"]
        logits = s * torch.tanh(logits / s)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1,
                               reduction=reduction)


def _value(v):
    # metadata values are strings: ints, floats ("15.0") or names ("SSSL")
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


def main(inp, out, make_model=None, extra=None):
    """Parity check: read weights, inputs and config from kiln's safetensors `inp`, write
    logits, loss, per-token loss and every parameter's gradient to `out`. make_model(c) builds
    the model (default: this file's GPT); extra(model) adds tensors to `out`."""
    torch.set_num_threads(1)  # tiny tensors; see kOneThread in tests/unit/test_model.cpp
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(inp, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    c = {k: _value(v) for k, v in meta.items()}
    torch.manual_seed(0)
    model = (make_model or GPT)(c)
    sd = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    model.load_state_dict(sd, strict=True)
    idx, targets = tensors["idx"], tensors["targets"]
    with torch.no_grad():
        logits = model(idx)
        per_token = model(idx, targets, reduction="none").view(targets.shape)
    loss = model(idx, targets)
    loss.backward()
    res = {"logits": logits, "loss": loss.detach(), "per_token": per_token}
    if extra:
        res.update(extra(model))
    for n, p in model.named_parameters():
        res["grad." + n] = p.grad
    save_file({k: v.contiguous() for k, v in res.items()}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
