# PyTorch side of bench/train_step.sh and bench/gpu_check.sh: the same model
# (tests/reference/gpt_ref.py), batch, tokens (torch.randint on a CPU generator seeded 1, drawn in
# the same order), optimizers (nanochat's Muon, bf16 Newton-Schulz on CUDA and fp32 on the CPU as
# kiln runs it, with kiln's momentum warmup; torch.optim.AdamW) and timing rule as
# bench/train_step.cpp, printed in the same key=value format. --compile wraps the model in
# torch.compile (dynamic=False, as nanochat; the optimizers stay eager); --weights starts from
# kiln's initial weights so that the loss curves compare step by step.
# Usage: train_step_ref.py SHAPE [threads] [steps] [--layers N ... --threads N --device cuda
#        --dtype bf16 --compile [BACKEND] --weights F]
import argparse
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
    "custom": (0, 0, 0, 0, 0, 0, 0, 0),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="tiny", choices=sorted(SHAPES))
    ap.add_argument("threads", nargs="?", type=int)
    ap.add_argument("steps_pos", nargs="?", type=int)
    for k in ("layers", "width", "heads", "seq", "vocab", "batch", "warmup", "steps"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--threads", type=int, dest="threads_flag")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND")
    ap.add_argument("--weights")
    a = ap.parse_args()
    L, C, H, T, V, B, warmup, steps = SHAPES[a.shape]
    L, C, H, T, V, B, warmup, steps = (v if o is None else o for v, o in zip(
        (L, C, H, T, V, B, warmup, steps), (a.layers, a.width, a.heads, a.seq, a.vocab, a.batch, a.warmup, a.steps)))
    if a.steps_pos is not None:
        steps = a.steps_pos
    if a.threads or a.threads_flag:
        torch.set_num_threads(a.threads_flag or a.threads)
    dev = torch.device(a.device)
    c = dict(n_layer=L, n_embd=C, n_head=H, n_kv_head=H, head_dim=C // H, seq_len=T, vocab_size=V,
             padded_vocab_size=(V + 63) // 64 * 64, softcap=15.0, rope_base=10000.0)
    torch.manual_seed(42)
    model = GPT(c)
    if a.weights:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(a.weights), strict=True)
    else:  # nanochat's init scale (zero head / projections make no difference to the cost of a step)
        for n, p in model.named_parameters():
            torch.nn.init.normal_(p, 0.0, 1.0 if "wte" in n else 1.0 / p.size(1) ** 0.5)
    model.to(dev)
    scale = (C / 768) ** -0.5
    adamw = torch.optim.AdamW([dict(params=[model.lm_head.weight], lr=0.004 * scale),
                               dict(params=[model.transformer.wte.weight], lr=0.2 * scale)],
                              betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)
    muon = Muon(list(model.transformer.h.parameters()), lr=0.02, momentum=0.85,
                dtype=torch.bfloat16 if dev.type == "cuda" else torch.float32)
    fwd = torch.compile(model, dynamic=False, backend=a.compile) if a.compile else model
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    g = torch.Generator().manual_seed(1)
    times, tf, tb, to, losses = [], 0.0, 0.0, 0.0, []
    for i in range(warmup + steps):
        if i == warmup and cuda:
            torch.cuda.reset_peak_memory_stats()
        idx = torch.randint(V, (B, T), generator=g).to(dev)
        tgt = torch.randint(V, (B, T), generator=g).to(dev)
        # kiln's schedule at step i of 1000: LR multiplier 1 (no warmup, warmdown in the last 20%),
        # Muon momentum 0.85 -> 0.95 over 300 steps.
        muon.param_groups[0]["momentum"] = 0.85 + 0.10 * min(i / 300, 1.0)
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            loss = fwd(idx, tgt)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        muon.step()
        adamw.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
            tf, tb, to = tf + t1 - t0, tb + t2 - t1, to + t0 + dt - t2
    med = statistics.median_high(times)
    n_params = sum(p.numel() for p in model.parameters())
    # kiln's estimate_flops (PaLM's count, as nanochat): 6 * (params - embedding) + 12 * L * H * D * T
    flops = 6 * (n_params - model.transformer.wte.weight.numel()) + 12 * L * H * (C // H) * T
    peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else -1
    impl = "pytorch-compile" if a.compile else "pytorch"
    print(f"impl={impl} shape={a.shape} device={a.device} dtype={a.dtype} threads={torch.get_num_threads()} "
          f"params={n_params} flops_per_token={flops:.6g} tokens_per_step={B * T} median_step_ms={med * 1e3:.2f} tok_per_s={B * T / med:.0f} "
          f"loss={losses[-1]:.4f} fwd_ms={tf / steps * 1e3:.1f} bwd_ms={tb / steps * 1e3:.1f} "
          f"opt_ms={to / steps * 1e3:.1f} peak_mem_gb={peak:.2f} losses={','.join(f'{x:.6f}' for x in losses)}")


if __name__ == "__main__":
    main()
