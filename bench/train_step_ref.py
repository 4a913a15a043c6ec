# PyTorch-eager side of bench/train_step.sh: the same model (tests/reference/gpt_ref.py), batch,
# optimizers (nanochat's Muon in fp32 as kiln runs it on CPU, torch.optim.AdamW with defaults)
# and timing rule as bench/train_step.cpp, printed in the same key=value format.
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
from gpt_ref import GPT  # noqa: E402
from optim_ref import Muon  # noqa: E402

# name: layers, width, heads, seq, vocab, batch, warmup, steps (same table as train_step.cpp)
SHAPES = {
    "tiny": (4, 128, 4, 64, 265, 16, 5, 30),
    "shakespeare_char": (6, 384, 6, 256, 265, 64, 1, 3),
}


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    L, C, H, T, V, B, warmup, steps = SHAPES[which]
    if len(sys.argv) > 2:
        torch.set_num_threads(int(sys.argv[2]))
    if len(sys.argv) > 3:
        steps = int(sys.argv[3])
    c = dict(n_layer=L, n_embd=C, n_head=H, n_kv_head=H, head_dim=C // H, seq_len=T, vocab_size=V,
             padded_vocab_size=(V + 63) // 64 * 64, softcap=15.0, rope_base=10000.0)
    torch.manual_seed(42)
    model = GPT(c)
    # nanochat's init (zero head / projections make no difference to the cost of a step)
    for n, p in model.named_parameters():
        torch.nn.init.normal_(p, 0.0, 1.0 if "wte" in n else 1.0 / p.size(1) ** 0.5)
    scale = (C / 768) ** -0.5
    adamw = torch.optim.AdamW([dict(params=[model.lm_head.weight], lr=0.004 * scale),
                               dict(params=[model.transformer.wte.weight], lr=0.2 * scale)],
                              betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)
    muon = Muon(list(model.transformer.h.parameters()), lr=0.02, momentum=0.95)
    g = torch.Generator().manual_seed(1)
    times, tf, tb, to = [], 0.0, 0.0, 0.0
    loss = None
    for i in range(warmup + steps):
        idx = torch.randint(V, (B, T), generator=g)
        tgt = torch.randint(V, (B, T), generator=g)
        t0 = time.perf_counter()
        loss = model(idx, tgt)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        muon.step()
        adamw.step()
        model.zero_grad(set_to_none=True)
        loss = loss.item()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
            tf, tb, to = tf + t1 - t0, tb + t2 - t1, to + t0 + dt - t2
    med = statistics.median_high(times)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"impl=pytorch shape={which} threads={torch.get_num_threads()} params={n_params} "
          f"tokens_per_step={B * T} median_step_ms={med * 1e3:.2f} tok_per_s={B * T / med:.0f} loss={loss:.4f} "
          f"fwd_ms={tf / steps * 1e3:.1f} bwd_ms={tb / steps * 1e3:.1f} opt_ms={to / steps * 1e3:.1f}")


if __name__ == "__main__":
    main()
