# Plain-PyTorch reference of nanochat's current GPT (nanochat 92d63d4, nanochat/gpt.py), written
# from that file and independent of kiln's C++: same parameter names, so it loads kiln's
# safetensors directly. The window follows nanochat's SDPA fallback (flash_attention.py): query i
# sees keys j with i - window <= j <= i. Used by the ModelParityV2 gtest (run as a script).
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# V1's pieces that nanochat kept unchanged: the weightless RMSNorm, the half-split rotary and the
# relu^2 MLP (tests/reference/gpt_ref.py).
import gpt_ref
from gpt_ref import Mlp as MLP, apply_rotary as apply_rotary_emb, norm


def has_ve(layer_idx, n_layer):
    return layer_idx % 2 == (n_layer - 1) % 2


def sdpa_window(q, k, v, window, enable_gqa):
    # q, k, v (B, H, T, D); nanochat's _sdpa_attention for Tq == Tk
    T = q.size(2)
    if window < 0 or window >= T:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=enable_gqa)
    row = torch.arange(T).unsqueeze(1)
    col = torch.arange(T).unsqueeze(0)
    mask = (col <= row) & ((row - col) <= window)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=enable_gqa)


class CausalSelfAttention(nn.Module):
    def __init__(self, c, layer_idx):
        super().__init__()
        self.n_head, self.n_kv_head = c["n_head"], c["n_kv_head"]
        self.head_dim = c["n_embd"] // c["n_head"]
        C = c["n_embd"]
        self.c_q = nn.Linear(C, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(C, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(C, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(C, C, bias=False)
        self.ve_gate_channels = 12
        self.ve_gate = nn.Linear(12, self.n_kv_head, bias=False) if has_ve(layer_idx, c["n_layer"]) else None

    def forward(self, x, ve, cos_sin, window):
        B, T, C = x.size()
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:
            ve = ve.view(B, T, self.n_kv_head, self.head_dim)
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))
            v = v + gate.unsqueeze(-1) * ve
        cos, sin = cos_sin
        q, k = apply_rotary_emb(q, cos, sin), apply_rotary_emb(k, cos, sin)
        q, k = norm(q), norm(k)
        q = q * 1.2
        k = k * 1.2
        y = sdpa_window(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), window,
                        self.n_kv_head != self.n_head).transpose(1, 2)
        return self.c_proj(y.contiguous().view(B, T, -1))


class Block(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        self.attn = CausalSelfAttention(c, i)
        self.mlp = MLP(c)

    def forward(self, x, ve, cos_sin, window):
        x = x + self.attn(norm(x), ve, cos_sin, window)
        return x + self.mlp(norm(x))


def window_sizes(pattern, n_layer, seq_len, short_window):
    long_w = seq_len
    short_w = short_window if short_window > 0 else -(-long_w // 4 // 128) * 128
    w = [short_w if pattern[i % len(pattern)] == "S" else long_w for i in range(n_layer)]
    w[-1] = long_w
    return w


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        L, C, V = c["n_layer"], c["n_embd"], c["padded_vocab_size"]
        self.windows = window_sizes(c["window_pattern"], L, c["seq_len"], c["short_window"])
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(V, C),
                                          "h": nn.ModuleList([Block(c, i) for i in range(L)])})
        self.lm_head = nn.Linear(C, V, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(L))
        self.x0_lambdas = nn.Parameter(torch.zeros(L))
        self.smear_gate = nn.Linear(24, 1, bias=False)
        self.smear_lambda = nn.Parameter(torch.zeros(1))
        self.backout_lambda = nn.Parameter(0.2 * torch.ones(1))
        kv_dim = c["n_kv_head"] * (C // c["n_head"])
        self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(V, kv_dim) for i in range(L) if has_ve(i, L)})
        D = C // c["n_head"]
        inv_freq = 1.0 / (c["rope_base"] ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
        freqs = torch.outer(torch.arange(10 * c["seq_len"], dtype=torch.float32), inv_freq)
        self.register_buffer("cos", freqs.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", freqs.sin()[None, :, None, :], persistent=False)

    def forward(self, idx, targets=None, reduction="mean"):
        B, T = idx.size()
        cos_sin = self.cos[:, :T], self.sin[:, :T]
        x = norm(self.transformer.wte(idx))
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[:, 1:, :24]))
        x = torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], dim=1)
        x0 = x
        n_layer = self.c["n_layer"]
        backout_layer = n_layer // 2
        x_backout = None
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos_sin, self.windows[i])
            if i == backout_layer:
                x_backout = x
        if x_backout is not None:
            x = x - self.backout_lambda * x_backout
        x = norm(x)
        s = self.c["softcap"]
        logits = self.lm_head(x)[..., :self.c["vocab_size"]].float()
        logits = s * torch.tanh(logits / s)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1,
                               reduction=reduction)

    def num_scaling_params(self):
        wte = sum(p.numel() for p in self.transformer.wte.parameters())
        value_embeds = sum(p.numel() for p in self.value_embeds.parameters())
        lm_head = sum(p.numel() for p in self.lm_head.parameters())
        transformer_matrices = sum(p.numel() for p in self.transformer.h.parameters())
        scalars = (self.resid_lambdas.numel() + self.x0_lambdas.numel() + self.smear_gate.weight.numel()
                   + self.smear_lambda.numel() + self.backout_lambda.numel())
        return [wte, value_embeds, lm_head, transformer_matrices, scalars,
                wte + value_embeds + lm_head + transformer_matrices + scalars]


def main(inp, out):
    # gpt_ref.main's parity run with this model, plus nanochat's num_scaling_params
    gpt_ref.main(inp, out, GPT,
                 lambda m: {"scaling_params": torch.tensor(m.num_scaling_params(), dtype=torch.int64)})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
