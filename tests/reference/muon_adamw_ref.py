# Reference for kiln's optim.recipe muon_adamw: nanochat's current MuonAdamW (nanochat/optim.py at
# 92d63d4, the single-rank path, without torch.compile), its parameter groups (gpt.py
# setup_optimizer) and the schedules of scripts/base_train.py (get_lr_multiplier,
# get_muon_momentum, get_weight_decay), transcribed. Same-shape matrices are stacked as nanochat
# stacks them; kiln steps them one by one. Driven by tests/unit/test_muon_adamw_parity.cpp:
#   muon_adamw_ref.py IN.safetensors SPEC.json OUT.safetensors
# IN holds p.<name> and g.<name>.s<k>; SPEC the roles, hyperparameters and schedule; OUT the params
# and every state tensor after each step (p.<name>.s<k>, <state>.<name>.s<k>).
import json
import math
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

COMPUTE_DTYPE = torch.float32  # nanochat's COMPUTE_DTYPE on a CPU


def adamw_step_fused(p, grad, exp_avg, exp_avg_sq, step_t, lr_t, beta1_t, beta2_t, eps_t, wd_t):
    p32 = p.float()
    exp_avg32 = exp_avg.float()
    exp_avg_sq32 = exp_avg_sq.float()
    grad32 = grad.float()
    p32.mul_(1 - lr_t * wd_t)
    exp_avg32.lerp_(grad32, 1 - beta1_t)
    exp_avg_sq32.lerp_(grad32.square(), 1 - beta2_t)
    bias1 = 1 - beta1_t ** step_t
    bias2 = 1 - beta2_t ** step_t
    denom = (exp_avg_sq32 / bias2).sqrt() + eps_t
    step_size = lr_t / bias1
    p32.add_(exp_avg32 / denom, alpha=-step_size)
    p.copy_(p32)
    exp_avg.copy_(exp_avg32)
    exp_avg_sq.copy_(exp_avg_sq32)


polar_express_coeffs = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


def muon_step_fused(stacked_grads, stacked_params, momentum_buffer, second_momentum_buffer, momentum_t, lr_t,
                    wd_t, beta2_t, ns_steps, red_dim):
    momentum = momentum_t.to(stacked_grads.dtype)
    momentum_buffer.lerp_(stacked_grads, 1 - momentum)
    g = stacked_grads.lerp_(momentum_buffer, momentum)
    X = g.bfloat16() if COMPUTE_DTYPE == torch.bfloat16 else g
    target = X.float().norm(dim=(-2, -1), keepdim=True) / (X.size(-2) ** 0.5)
    row_norm = X.float().norm(dim=-1, keepdim=True).clamp_min(1e-6)
    X = X * (target / row_norm).to(X.dtype)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.01 + 1e-6)
    if g.size(-2) > g.size(-1):
        for a, b, c in polar_express_coeffs[:ns_steps]:
            A = X.mT @ X
            B = b * A + c * (A @ A)
            X = a * X + X @ B
    else:
        for a, b, c in polar_express_coeffs[:ns_steps]:
            A = X @ X.mT
            B = b * A + c * (A @ A)
            X = a * X + B @ X
    g = X.to(stacked_params.dtype)
    target_norm = min(g.size(-2), g.size(-1)) ** 0.5
    current_norm = g.float().norm(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    g = g * (target_norm / current_norm).to(g.dtype)
    beta2 = beta2_t.to(g.dtype)
    v_mean = g.float().square().mean(dim=red_dim, keepdim=True)
    red_dim_size = g.size(red_dim)
    v_norm_sq = v_mean.sum(dim=(-2, -1), keepdim=True) * red_dim_size
    v_norm = v_norm_sq.sqrt()
    second_momentum_buffer.lerp_(v_mean.to(dtype=second_momentum_buffer.dtype), 1 - beta2)
    step_size = second_momentum_buffer.clamp_min(1e-10).rsqrt()
    scaled_sq_sum = (v_mean * red_dim_size) * step_size.float().square()
    v_norm_new = scaled_sq_sum.sum(dim=(-2, -1), keepdim=True).sqrt()
    final_scale = step_size * (v_norm / v_norm_new.clamp_min(1e-10))
    g = g * final_scale.to(g.dtype)
    lr = lr_t.to(g.dtype)
    wd = wd_t.to(g.dtype)
    mask = (g * stacked_params) >= 0
    stacked_params.sub_(lr * g + lr * wd * stacked_params * mask)


class MuonAdamW(torch.optim.Optimizer):
    """optim.py's MuonAdamW with world_size == 1 (every rank owns every parameter)."""

    def __init__(self, param_groups):
        super().__init__(param_groups, defaults={})
        f = lambda: torch.tensor(0.0, dtype=torch.float32, device="cpu")
        self._adamw_step_t, self._adamw_lr_t, self._adamw_beta1_t = f(), f(), f()
        self._adamw_beta2_t, self._adamw_eps_t, self._adamw_wd_t = f(), f(), f()
        self._muon_momentum_t, self._muon_lr_t, self._muon_wd_t, self._muon_beta2_t = f(), f(), f(), f()

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            if group["kind"] == "adamw":
                for p in group["params"]:
                    state = self.state[p]
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["step"] += 1
                    self._adamw_step_t.fill_(state["step"])
                    self._adamw_lr_t.fill_(group["lr"])
                    self._adamw_beta1_t.fill_(group["betas"][0])
                    self._adamw_beta2_t.fill_(group["betas"][1])
                    self._adamw_eps_t.fill_(group["eps"])
                    self._adamw_wd_t.fill_(group["weight_decay"])
                    adamw_step_fused(p, p.grad, state["exp_avg"], state["exp_avg_sq"], self._adamw_step_t,
                                     self._adamw_lr_t, self._adamw_beta1_t, self._adamw_beta2_t, self._adamw_eps_t,
                                     self._adamw_wd_t)
            else:
                params = group["params"]
                grad_chunk = torch.stack([p.grad for p in params])
                p = params[0]
                shape = p.shape
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros(len(params), *shape, dtype=p.dtype)
                if "second_momentum_buffer" not in state:
                    ss = (len(params), shape[-2], 1) if shape[-2] >= shape[-1] else (len(params), 1, shape[-1])
                    state["second_momentum_buffer"] = torch.zeros(ss, dtype=p.dtype)
                red_dim = -1 if shape[-2] >= shape[-1] else -2
                stacked = torch.stack(params)
                self._muon_momentum_t.fill_(group["momentum"])
                self._muon_beta2_t.fill_(group["beta2"])
                self._muon_lr_t.fill_(group["lr"] * max(1.0, shape[-2] / shape[-1]) ** 0.5)
                self._muon_wd_t.fill_(group["weight_decay"])
                muon_step_fused(grad_chunk, stacked, state["momentum_buffer"], state["second_momentum_buffer"],
                                self._muon_momentum_t, self._muon_lr_t, self._muon_wd_t, self._muon_beta2_t,
                                group["ns_steps"], red_dim)
                torch._foreach_copy_(params, list(stacked.unbind(0)))


def setup_optimizer(by_role, model_dim, unembedding_lr, embedding_lr, matrix_lr, weight_decay, scalar_lr):
    """gpt.py's setup_optimizer, with the parameters given by role instead of read off the GPT."""
    dmodel_lr_scale = (model_dim / 768) ** -0.5
    r = lambda k: by_role.get(k, [])
    groups = [
        dict(kind="adamw", params=r("unembedding"), lr=unembedding_lr * dmodel_lr_scale, betas=(0.8, 0.96), eps=1e-10, weight_decay=0.01),
        dict(kind="adamw", params=r("embedding"), lr=embedding_lr * dmodel_lr_scale, betas=(0.8, 0.995), eps=1e-10, weight_decay=0.001),
        dict(kind="adamw", params=r("value_embedding"), lr=embedding_lr * dmodel_lr_scale * 0.5, betas=(0.8, 0.995), eps=1e-10, weight_decay=0.01),
        dict(kind="adamw", params=r("resid_lambda"), lr=scalar_lr * 0.01, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.05),
        dict(kind="adamw", params=r("x0_lambda"), lr=scalar_lr, betas=(0.96, 0.95), eps=1e-10, weight_decay=0.0),
        dict(kind="adamw", params=r("smear"), lr=0.2, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0),
    ]
    matrix_params = r("matrix")
    for shape in sorted({p.shape for p in matrix_params}):
        groups.append(dict(kind="muon", params=[p for p in matrix_params if p.shape == shape], lr=matrix_lr,
                           momentum=0.95, ns_steps=5, beta2=0.9, weight_decay=weight_decay))
    opt = MuonAdamW(groups)
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return opt


def main(inp, spec_path, out):
    torch.set_num_threads(1)
    spec = json.load(open(spec_path))
    with safe_open(inp, "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
    names = spec["names"]  # in kiln's order; roles[i] is names[i]'s
    params = {n: t["p." + n].clone() for n in names}
    by_role = {}
    for n, role in zip(names, spec["roles"]):
        by_role.setdefault(role, []).append(params[n])
    h = spec["hyper"]
    bs = h["batch_lr_scale"]
    opt = setup_optimizer(by_role, h["model_dim"], h["unembedding_lr"] * bs, h["embedding_lr"] * bs,
                          h["matrix_lr"] * bs, h["weight_decay"] * h["weight_decay_scale"], h["scalar_lr"] * bs)
    num_iterations = spec["total"]
    weight_decay_scaled = h["weight_decay"] * h["weight_decay_scale"]

    # base_train.py's schedules, with its constants (40, 400, 0.85/0.97/0.90) taken from the spec
    def get_lr_multiplier(it):
        warmup_iters = h["warmup_steps"]
        warmdown_iters = round(h["warmdown_ratio"] * num_iterations)
        if it < warmup_iters:
            return (it + 1) / warmup_iters
        elif it <= num_iterations - warmdown_iters:
            return 1.0
        else:
            progress = (num_iterations - it) / warmdown_iters
            return progress * 1.0 + (1 - progress) * h["final_lr_frac"]

    def get_muon_momentum(it):
        warmdown_iters = round(h["warmdown_ratio"] * num_iterations)
        warmdown_start = num_iterations - warmdown_iters
        if it < h["momentum_warmup"]:
            frac = it / h["momentum_warmup"]
            return (1 - frac) * h["momentum_start"] + frac * h["momentum_end"]
        elif it >= warmdown_start:
            progress = (it - warmdown_start) / warmdown_iters
            return h["momentum_end"] * (1 - progress) + h["momentum_final"] * progress
        else:
            return h["momentum_end"]

    def get_weight_decay(it):
        return weight_decay_scaled * 0.5 * (1 + math.cos(math.pi * it / num_iterations))

    res = {}
    # where each kiln parameter sits in the stacked Muon state: (group's first param, index)
    slot = {}
    for group in opt.param_groups:
        if group["kind"] == "muon":
            for i, p in enumerate(group["params"]):
                slot[id(p)] = (group["params"][0], i)
    for s in range(spec["steps"]):
        for n in names:
            params[n].grad = t[f"g.{n}.s{s}"].clone()
        lrm, mom, wd = get_lr_multiplier(s), get_muon_momentum(s), get_weight_decay(s)
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * lrm
            if group["kind"] == "muon":
                group["momentum"] = mom
                group["weight_decay"] = wd
        opt.step()
        for n, role in zip(names, spec["roles"]):
            p = params[n]
            res[f"p.{n}.s{s}"] = p.clone()
            if role == "matrix":
                first, i = slot[id(p)]
                res[f"momentum_buffer.{n}.s{s}"] = opt.state[first]["momentum_buffer"][i].clone()
                res[f"second_momentum_buffer.{n}.s{s}"] = opt.state[first]["second_momentum_buffer"][i].clone()
            else:
                res[f"exp_avg.{n}.s{s}"] = opt.state[p]["exp_avg"].clone()
                res[f"exp_avg_sq.{n}.s{s}"] = opt.state[p]["exp_avg_sq"].clone()
                res[f"step.{n}.s{s}"] = torch.tensor(opt.state[p]["step"], dtype=torch.int64)
        res[f"lrm.s{s}"] = torch.tensor(lrm, dtype=torch.float64)
        res[f"momentum.s{s}"] = torch.tensor(mom, dtype=torch.float64)
        res[f"weight_decay.s{s}"] = torch.tensor(wd, dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in res.items()}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
