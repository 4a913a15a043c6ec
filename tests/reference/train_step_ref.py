# One optimizer step of training, written from the math (nanochat V1, ARCHITECTURE.md §5) and not
# from kiln's code: the GPT of gpt_ref.py, the data windows of the token shards, the mean loss
# over the whole step's tokens (2 micro-batches), global-norm clipping, Muon (Nesterov momentum,
# Newton-Schulz, sqrt(max(1, rows/cols)) scale) for the block matrices, AdamW (lr scaled by
# (width/768)^-0.5) for embedding and head, and the LR / momentum schedules as formulas.
# Compares with a real ./pretrain run; driven by tests/e2e/train_step_reference.sh.
# Usage: train_step_ref.py INIT_STEP_DIR RUN_CKPT_DIR SHARD_GLOB VOCAB  (prints one line per check)
import glob
import json
import math
import os
import sys

import h5py
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_ref import GPT  # noqa: E402
from optim_ref import zeropower_via_newtonschulz5  # noqa: E402


def cfg_value(yaml_text, section, key):
    """A scalar from kiln's resolved config YAML (two-level, one key per line)."""
    cur = None
    for line in yaml_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            cur = line[:-1]
        elif cur == section and line.strip().startswith(key + ":"):
            return line.split(":", 1)[1].split("#")[0].strip().strip('"')
    raise KeyError(f"{section}.{key}")


def lr_multiplier(it, total, warmup_ratio, warmdown_ratio, final_frac):
    warmup, warmdown = round(warmup_ratio * total), round(warmdown_ratio * total)
    if it < warmup:
        return (it + 1) / warmup
    if it <= total - warmdown:
        return 1.0
    progress = (total - it) / warmdown
    return progress + (1 - progress) * final_frac


def muon_momentum(it, start, end, warmup):
    frac = min(it / warmup, 1.0) if warmup > 0 else 1.0
    return (1 - frac) * start + frac * end


def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def main(init_dir, ckpt_dir, shard_glob, vocab):
    torch.set_num_threads(1)
    meta = json.load(open(f"{ckpt_dir}/step_00000001/meta.json"))
    y = meta["config"]
    f = lambda s, k: float(cfg_value(y, s, k))  # noqa: E731
    B, T = int(f("train", "device_batch_size")), int(f("model", "seq_len"))
    total_tokens, total = int(f("train", "total_batch_size")), int(f("train", "max_steps"))
    accum = total_tokens // (B * T)
    w0 = load_file(f"{init_dir}/model.safetensors")
    C = w0["transformer.wte.weight"].shape[1]
    n_layer = len({k.split(".")[2] for k in w0 if k.startswith("transformer.h.")})
    n_head = int(f("model", "n_head"))
    c = dict(n_layer=n_layer, n_embd=C, n_head=n_head, n_kv_head=int(f("model", "n_kv_head")) or n_head,
             head_dim=C // n_head, seq_len=T, vocab_size=int(vocab), padded_vocab_size=w0["lm_head.weight"].shape[0],
             softcap=f("model", "softcap"), rope_base=f("model", "rope_base"))
    model = GPT(c)
    model.load_state_dict(w0, strict=True)

    # The step's data: window k of the token stream is tokens[k*B*T : k*B*T + B*T + 1] (1 rank).
    tokens = torch.cat([torch.from_numpy(h5py.File(p, "r")["tokens"][:].astype("int64")) for p in sorted(glob.glob(shard_glob))])
    xs, ys = [], []
    for k in range(accum):
        w = tokens[k * B * T: k * B * T + B * T + 1]
        xs.append(w[:-1].view(B, T))
        ys.append(w[1:].view(B, T))
    # Loss of the step: mean over all of its tokens (every target is valid in pretraining).
    loss = sum(model(x, t, reduction="sum") for x, t in zip(xs, ys)) / sum(t.numel() for t in ys)
    loss.backward()
    params = list(model.parameters())
    clip = f("train", "grad_clip")
    norm = torch.nn.utils.clip_grad_norm_(params, clip) if clip > 0 else torch.norm(torch.stack([p.grad.norm() for p in params]))

    it = 0
    lrm = lr_multiplier(it, total, f("optim", "warmup_ratio"), f("optim", "warmdown_ratio"), f("optim", "final_lr_frac"))
    mom = muon_momentum(it, f("optim", "muon_momentum_start"), f("optim", "muon_momentum_end"), f("optim", "muon_momentum_warmup"))
    named = dict(model.named_parameters())
    with torch.no_grad():
        # Muon on the block matrices: first step, so the momentum buffer starts at zero.
        for n, p in named.items():
            if not n.startswith("transformer.h."):
                continue
            buf = torch.zeros_like(p.grad).lerp_(p.grad, 1 - mom)
            g = p.grad.lerp(buf, mom)  # Nesterov
            g = zeropower_via_newtonschulz5(g, int(f("optim", "ns_steps")), torch.float32)
            p.add_(g, alpha=-f("optim", "matrix_lr") * lrm * max(1, p.size(-2) / p.size(-1)) ** 0.5)
        # AdamW, step 1 (bias corrections 1 - beta^1), decoupled weight decay.
        b1, b2, eps, wd = f("optim", "adam_beta1"), f("optim", "adam_beta2"), f("optim", "adam_eps"), f("optim", "weight_decay")
        scale = (C / 768) ** -0.5
        for n, base in (("lm_head.weight", f("optim", "unembedding_lr")), ("transformer.wte.weight", f("optim", "embedding_lr"))):
            p, g, lr = named[n], named[n].grad, base * scale * lrm
            m, v = (1 - b1) * g, (1 - b2) * g * g
            p.mul_(1 - lr * wd)
            p.add_(-lr * (m / (1 - b1)) / ((v / (1 - b2)).sqrt() + eps))

    rec = [json.loads(l) for l in open(os.path.join(os.path.dirname(ckpt_dir.rstrip("/")), "metrics.jsonl")) if '"loss"' in l]
    kiln_loss, kiln_norm = rec[0]["loss"], rec[0]["grad_norm"]
    w1 = load_file(f"{ckpt_dir}/step_00000001/model.safetensors")
    bad = []
    dl, dn = abs(kiln_loss - loss.item()) / loss.item(), abs(kiln_norm - norm.item()) / norm.item()
    print(f"loss      kiln {kiln_loss:.9g}  reference {loss.item():.9g}  rel.err {dl:.2e} (bound 1e-5)")
    print(f"grad norm kiln {kiln_norm:.9g}  reference {norm.item():.9g}  rel.err {dn:.2e} (bound 1e-4), clip {clip}")
    if not dl < 1e-5: bad.append("loss")
    if not dn < 1e-4: bad.append("grad norm")
    worst = 0.0
    for n, p in named.items():
        e = rel(w1[n] - w0[n], p - w0[n])  # error of the update, scale-free
        worst = max(worst, e)
        if not e < 2e-3: bad.append(f"weight {n} (update rel.err {e:.2e})")
    print(f"weights   {len(named)} tensors after the step: max rel.err of the update {worst:.2e} (bound 2e-3)")

    # The schedule: step_k's optimizer state holds what step k (0-based k-1) ran with.
    worst_s = 0.0
    for k in range(1, total + 1):
        o = load_file(f"{ckpt_dir}/step_{k:08d}/optim_rank_00000.safetensors")
        want_m = lr_multiplier(k - 1, total, f("optim", "warmup_ratio"), f("optim", "warmdown_ratio"), f("optim", "final_lr_frac"))
        want_mom = muon_momentum(k - 1, f("optim", "muon_momentum_start"), f("optim", "muon_momentum_end"), f("optim", "muon_momentum_warmup"))
        got = (o["adamw.lr_multiplier"].item(), o["muon.lr"].item() / f("optim", "matrix_lr"), o["muon.momentum"].item())
        err = max(abs(got[0] - want_m), abs(got[1] - want_m), abs(got[2] - want_mom))
        worst_s = max(worst_s, err)
        print(f"schedule step {k:2d}: lr mult {got[0]:.6f} (formula {want_m:.6f})  muon momentum {got[2]:.6f} (formula {want_mom:.6f})")
        if not err < 1e-12: bad.append(f"schedule at step {k}")
    print(f"schedule  {total} steps: max abs error {worst_s:.1e} (bound 1e-12)")
    if bad:
        print("MISMATCH: " + ", ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
