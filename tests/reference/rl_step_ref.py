# One ./rl optimizer step, written from nanochat's scripts/chat_rl.py and not from kiln's code:
# given the samples ./rl drew (ids, sampled/forced masks and rewards, dumped by KILN_RL_DUMP),
# each question's rows are padded with <|assistant_end|>, targets are -1 where the mask is 0,
# advantages are rewards - mean (no std), and each pass of device_batch_size rows adds
#   -(logp * advantage).sum() / (valid targets x passes x questions per rank)
# to the loss, whose gradient the update of train_step_ref.py (Muon + AdamW, no clipping, LRs x
# init_lr_frac x (1 - step / steps)) applies. Loss, gradient norm and every updated weight are
# compared with the run's metrics and checkpoints; driven by tests/e2e/rl.sh (1 rank).
# Padding: chat_rl.py pads with <|assistant_end|>; any id gives the same loss (padding comes after
# a row's last token, so causal attention hides it from every trained position), so 0 is used.
# Usage: rl_step_ref.py INIT_STEP_DIR RUN_CKPT_DIR DUMP_JSONL VOCAB STEPS
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_ref import GPT  # noqa: E402
from train_step_ref import cfg_value, compare_weights, model_config, optimizer_update  # noqa: E402


def rl_loss(model, groups, B, examples_per_rank, pad):
    """chat_rl.py's loss of one step (1 rank), summed over its passes, backpropagated."""
    total = 0.0
    for g in groups:
        seqs = [s["ids"] for s in g["samples"]]
        masks = [s["mask"] for s in g["samples"]]
        L = max(len(x) for x in seqs)
        ids = torch.tensor([x + [pad] * (L - len(x)) for x in seqs])
        mask_ids = torch.tensor([m + [0] * (L - len(m)) for m in masks])
        inputs, targets = ids[:, :-1], ids[:, 1:].clone()
        targets[mask_ids[:, 1:] == 0] = -1
        rewards = torch.tensor([s["reward"] for s in g["samples"]], dtype=torch.float)
        advantages = rewards - rewards.mean()
        num_passes = ids.size(0) // B
        for p in range(num_passes):
            b0, b1 = p * B, (p + 1) * B
            logp = -model(inputs[b0:b1], targets[b0:b1], reduction="none").view_as(inputs[b0:b1])
            pg_obj = (logp * advantages[b0:b1].unsqueeze(-1)).sum()
            num_valid = (targets[b0:b1] >= 0).sum().clamp(min=1)
            pg_obj = pg_obj / (num_valid * num_passes * examples_per_rank)
            loss = -pg_obj
            loss.backward()
            total += loss.item()
    return total


def main(init_dir, ckpt_dir, dump, vocab, steps):
    torch.set_num_threads(1)
    meta = json.load(open(f"{ckpt_dir}/step_00000001/meta.json"))
    y = meta["config"]
    f = lambda s, k: float(cfg_value(y, s, k))  # noqa: E731
    B, T, total = int(f("train", "device_batch_size")), int(f("model", "seq_len")), int(f("train", "max_steps"))
    P = int(f("rl", "examples_per_step"))
    w0 = load_file(f"{init_dir}/model.safetensors")
    c = model_config(w0, y, T, vocab)
    hp = {k: f("optim", k) for k in ("warmup_ratio", "warmdown_ratio", "final_lr_frac", "muon_momentum_start",
                                      "muon_momentum_end", "muon_momentum_warmup", "ns_steps", "matrix_lr", "init_lr_frac",
                                      "embedding_lr", "unembedding_lr", "adam_beta1", "adam_beta2", "adam_eps", "weight_decay")}
    hp.update(total=total, C=c["n_embd"], clip=f("train", "grad_clip"))
    rec = [json.loads(l) for l in open(os.path.join(os.path.dirname(ckpt_dir.rstrip("/")), "metrics.jsonl")) if '"loss"' in l]
    rows = [json.loads(l) for l in open(dump)]
    bad = []
    for k in range(1, int(steps) + 1):
        w_before = w0 if k == 1 else load_file(f"{ckpt_dir}/step_{k - 1:08d}/model.safetensors")
        state = None if k == 1 else load_file(f"{ckpt_dir}/step_{k - 1:08d}/optim_rank_00000.safetensors")
        groups = sorted((r for r in rows if r["step"] == k - 1), key=lambda r: r["lane"])
        if len(groups) != P: bad.append(f"step {k}: {len(groups)} questions dumped, want {P}")
        model = GPT(c)
        model.load_state_dict(w_before, strict=True)
        loss = rl_loss(model, groups, B, P, 0)
        norm, w_ref = optimizer_update(model, c, hp, state, k - 1)
        kiln_loss, kiln_norm = rec[k - 1]["loss"], rec[k - 1]["grad_norm"]
        w_kiln = load_file(f"{ckpt_dir}/step_{k:08d}/model.safetensors")
        # The loss is a signed sum that can be near 0: its error is relative to max(|loss|, 1e-3).
        rewards = [s["reward"] for g in groups for s in g["samples"]]
        dl = abs(kiln_loss - loss) / max(abs(loss), 1e-3)
        dn = abs(kiln_norm - norm) / norm if norm > 0 else abs(kiln_norm)
        print(f"step {k}: {len(groups)} questions, rewards {sum(rewards):.0f}/{len(rewards)}")
        print(f"step {k}: loss      kiln {kiln_loss:.9g}  reference {loss:.9g}  rel.err {dl:.2e} (bound 1e-5)")
        print(f"step {k}: grad norm kiln {kiln_norm:.9g}  reference {norm:.9g}  rel.err {dn:.2e} (bound 1e-6)")
        if not dl < 1e-5: bad.append(f"step {k} loss")
        if not dn < 1e-6: bad.append(f"step {k} grad norm")
        if norm == 0: bad.append(f"step {k}: zero gradient (every reward equal: a vacuous check)")
        compare_weights(k, w_before, w_ref, w_kiln, bad)
    if bad:
        print("MISMATCH: " + ", ".join(bad))
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
