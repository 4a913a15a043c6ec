# One optimizer step of training, written from the math (nanochat V1) and not
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


MATRIX_NAMES = ("attn.c_q", "attn.c_k", "attn.c_v", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # Muon's order


def reference_step(c, hp, tokens, w_before, state, it):
    """One optimizer step at 0-based index `it` from weights `w_before` and kiln's saved optimizer
    state (None: fresh). Returns (loss, grad norm before clipping, weights after)."""
    model = GPT(c)
    model.load_state_dict(w_before, strict=True)
    B, T, accum = hp["B"], hp["T"], hp["accum"]
    # The step's data: window k of the token stream is tokens[k*B*T : k*B*T + B*T + 1] (1 rank);
    # step `it` reads windows it*accum .. it*accum + accum - 1.
    xs, ys = [], []
    for m in range(accum):
        k = it * accum + m
        w = tokens[k * B * T: k * B * T + B * T + 1]
        xs.append(w[:-1].view(B, T))
        ys.append(w[1:].view(B, T))
    # Loss of the step: mean over all of its tokens (every target is valid in pretraining).
    loss = sum(model(x, t, reduction="sum") for x, t in zip(xs, ys)) / sum(t.numel() for t in ys)
    loss.backward()
    norm, weights = optimizer_update(model, c, hp, state, it)
    return loss.item(), norm, weights


def optimizer_update(model, c, hp, state, it):
    """The update of a step whose gradients are in `model`: clipping, the schedule (times
    hp["init_lr_frac"], 1 unless given), Muon and AdamW from kiln's saved optimizer state (None:
    fresh). Returns (grad norm before clipping, weights after). Shared with rl_step_ref.py."""
    params = list(model.parameters())
    if hp["clip"] > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, hp["clip"])
    else:
        norm = torch.norm(torch.stack([p.grad.norm() for p in params]))
    lrm = hp.get("init_lr_frac", 1.0) * lr_multiplier(it, hp["total"], hp["warmup_ratio"], hp["warmdown_ratio"],
                                                      hp["final_lr_frac"])
    mom = muon_momentum(it, hp["muon_momentum_start"], hp["muon_momentum_end"], hp["muon_momentum_warmup"])
    named = dict(model.named_parameters())
    n_layer = c["n_layer"]
    with torch.no_grad():
        # Muon (Nesterov momentum, Newton-Schulz, shape scale) on the block matrices.
        i = 0
        for l in range(n_layer):
            for mn in MATRIX_NAMES:
                p = named[f"transformer.h.{l}.{mn}.weight"]
                key = f"muon.transformer.h.{l}.{mn}.weight.momentum_buffer"  # state by parameter name
                buf = state[key].clone() if state is not None and key in state else torch.zeros_like(p)
                buf.lerp_(p.grad, 1 - mom)
                g = p.grad.lerp(buf, mom)
                g = zeropower_via_newtonschulz5(g, int(hp["ns_steps"]), torch.float32)
                p.add_(g, alpha=-hp["matrix_lr"] * lrm * max(1, p.size(-2) / p.size(-1)) ** 0.5)
                i += 1
        # AdamW with bias correction and decoupled weight decay; groups: head, embedding.
        b1, b2, eps, wd = hp["adam_beta1"], hp["adam_beta2"], hp["adam_eps"], hp["weight_decay"]
        scale = (hp["C"] / 768) ** -0.5
        for k, (n, base) in enumerate((("lm_head.weight", hp["unembedding_lr"]), ("transformer.wte.weight", hp["embedding_lr"]))):
            p, g, lr = named[n], named[n].grad, base * scale * lrm
            has = state is not None and f"adamw.{n}.exp_avg" in state
            m = state[f"adamw.{n}.exp_avg"].clone() if has else torch.zeros_like(p)
            v = state[f"adamw.{n}.exp_avg_sq"].clone() if has else torch.zeros_like(p)
            t = (int(state[f"adamw.{n}.step"].item()) if has else 0) + 1
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.mul_(1 - lr * wd)
            p.addcdiv_(m, (v / (1 - b2 ** t)).sqrt() + eps, value=-lr / (1 - b1 ** t))
    return norm.item(), {n: p.detach().clone() for n, p in named.items()}


def compare_weights(k, w_before, w_ref, w_kiln, bad):
    """Step k's update of every tensor, kiln's against the reference's (relative error of the
    update, scale-free; bound 1e-3); appends failures to `bad`, prints one line, returns how many
    tensors moved. Shared with rl_step_ref.py."""
    worst, moved = 0.0, 0
    for n in w_ref:
        upd = w_ref[n] - w_before[n]
        moved += int(upd.abs().max().item() > 0)
        e = rel(w_kiln[n] - w_before[n], upd)
        worst = max(worst, e)
        if not e < 1e-3: bad.append(f"step {k} weight {n} (update rel.err {e:.2e})")
    print(f"step {k}: weights   {len(w_ref)} tensors ({moved} moved): max rel.err of the update {worst:.2e} (bound 1e-3)")
    return moved


def model_config(w0, y, T, vocab):
    """gpt_ref's config from a checkpoint's weights and its config YAML. Shared with rl_step_ref.py."""
    f = lambda s, k: float(cfg_value(y, s, k))  # noqa: E731
    C = w0["transformer.wte.weight"].shape[1]
    n_layer = len({k.split(".")[2] for k in w0 if k.startswith("transformer.h.")})
    n_head = int(f("model", "n_head"))
    return dict(n_layer=n_layer, n_embd=C, n_head=n_head, n_kv_head=int(f("model", "n_kv_head")) or n_head,
                head_dim=C // n_head, seq_len=T, vocab_size=int(vocab), padded_vocab_size=w0["lm_head.weight"].shape[0],
                softcap=f("model", "softcap"), rope_base=f("model", "rope_base"))


def main(init_dir, ckpt_dir, shard_glob, vocab):
    torch.set_num_threads(1)
    meta = json.load(open(f"{ckpt_dir}/step_00000001/meta.json"))
    y = meta["config"]
    f = lambda s, k: float(cfg_value(y, s, k))  # noqa: E731
    B, T = int(f("train", "device_batch_size")), int(f("model", "seq_len"))
    total_tokens, total = int(f("train", "total_batch_size")), int(f("train", "max_steps"))
    accum = total_tokens // (B * T)
    w0 = load_file(f"{init_dir}/model.safetensors")
    c = model_config(w0, y, T, vocab)
    C = c["n_embd"]
    tokens = torch.cat([torch.from_numpy(h5py.File(p, "r")["tokens"][:].astype("int64")) for p in sorted(glob.glob(shard_glob))])
    hp = {k: f("optim", k) for k in ("warmup_ratio", "warmdown_ratio", "final_lr_frac", "muon_momentum_start",
                                      "muon_momentum_end", "muon_momentum_warmup", "ns_steps", "matrix_lr",
                                      "embedding_lr", "unembedding_lr", "adam_beta1", "adam_beta2", "adam_eps", "weight_decay")}
    hp.update(B=B, T=T, accum=accum, total=total, C=C, clip=f("train", "grad_clip"))
    rec = [json.loads(l) for l in open(os.path.join(os.path.dirname(ckpt_dir.rstrip("/")), "metrics.jsonl")) if '"loss"' in l]
    bad = []
    # Step 1 from the initial weights (only lm_head moves: nanochat's zero head and zero c_proj
    # block every other gradient), then steps 2 and 3 from the previous step's weights and
    # optimizer state (step 2 moves wte and c_proj too, step 3 every tensor).
    steps = [(1, w0, None)] + [(k, load_file(f"{ckpt_dir}/step_{k - 1:08d}/model.safetensors"),
                                load_file(f"{ckpt_dir}/step_{k - 1:08d}/optim_rank_00000.safetensors")) for k in (2, 3)]
    for k, w_before, state in steps:
        loss, norm, w_ref = reference_step(c, hp, tokens, w_before, state, k - 1)
        kiln_loss, kiln_norm = rec[k - 1]["loss"], rec[k - 1]["grad_norm"]
        w_kiln = load_file(f"{ckpt_dir}/step_{k:08d}/model.safetensors")
        dl, dn = abs(kiln_loss - loss) / loss, abs(kiln_norm - norm) / norm
        # Measured: loss <= 8.5e-8, norm <= 6.3e-10, updates <= 2.7e-5 (float32 sums in another
        # order, through Newton-Schulz); a missing 1/accum doubles the norm, an off-by-one schedule
        # changes lr by 50% and the momentum (schedule check and weights).
        print(f"step {k}: loss      kiln {kiln_loss:.9g}  reference {loss:.9g}  rel.err {dl:.2e} (bound 1e-5)")
        print(f"step {k}: grad norm kiln {kiln_norm:.9g}  reference {norm:.9g}  rel.err {dn:.2e} (bound 1e-6), clip {hp['clip']}")
        if not dl < 1e-5: bad.append(f"step {k} loss")
        if not dn < 1e-6: bad.append(f"step {k} grad norm")
        moved = compare_weights(k, w_before, w_ref, w_kiln, bad)
        if k == 3 and moved != len(w_ref): bad.append(f"step 3 moved only {moved} of {len(w_ref)} tensors (vacuous check)")

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
