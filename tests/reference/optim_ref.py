# One-step references for kiln's optimizers: AdamW is torch.optim.AdamW itself (single-tensor
# path), Muon is a line-by-line transcription of nanochat V1's muon.py (Muon + Newton-Schulz),
# in fp32 because kiln runs Muon in fp32 on the CPU. Driven by tests/unit/test_optim_parity.cpp.
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def zeropower_via_newtonschulz5(G, steps, dtype):
    # nanochat: quintic iteration, coefficients maximise the slope at zero
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.to(dtype)
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, dtype=torch.float32):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps))
        self.dtype = dtype

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.lerp_(g, 1 - group["momentum"])
                g = g.lerp_(buf, group["momentum"]) if group["nesterov"] else buf
                g = zeropower_via_newtonschulz5(g, group["ns_steps"], self.dtype)
                p.add_(g, alpha=-group["lr"] * max(1, p.size(-2) / p.size(-1)) ** 0.5)


def main(inp, out):
    torch.set_num_threads(1)  # tiny tensors; see kOneThread in tests/unit/test_model.cpp
    """inp holds p<i>, g<i>_s<k> (grad of param i at step k) and scalars; runs `steps` steps of
    each optimizer on copies of the params and writes muon.p<i>, adamw.p<i> and the states."""
    with safe_open(inp, "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
    n, steps = int(t["num_params"]), int(t["steps"])
    res = {}
    # Muon: one group, momentum and lr set per step like the trainer's schedule does.
    ps = [t[f"p{i}"].clone() for i in range(n)]
    opt = Muon(ps, lr=float(t["muon_lr"]), momentum=float(t["muon_momentum0"]))
    for s in range(steps):
        for i, p in enumerate(ps):
            p.grad = t[f"g{i}_s{s}"].clone()
        opt.param_groups[0]["momentum"] = float(t[f"muon_momentum{s}"])
        opt.step()
    for i, p in enumerate(ps):
        res[f"muon.p{i}"] = p
        res[f"muon.buf{i}"] = opt.state[p]["momentum_buffer"]
    # AdamW: two groups (params split in half), base lrs times a multiplier per step.
    ps = [t[f"p{i}"].clone() for i in range(n)]
    half = n // 2
    lrs = [float(t["adam_lr0"]), float(t["adam_lr1"])]
    opt = torch.optim.AdamW([dict(params=ps[:half], lr=lrs[0]), dict(params=ps[half:], lr=lrs[1])],
                            betas=(float(t["beta1"]), float(t["beta2"])), eps=float(t["eps"]),
                            weight_decay=float(t["weight_decay"]), foreach=False, fused=False)
    for s in range(steps):
        for i, p in enumerate(ps):
            p.grad = t[f"g{i}_s{s}"].clone()
        m = float(t[f"lrm{s}"])
        for g, base in zip(opt.param_groups, lrs):
            g["lr"] = base * m
        opt.step()
    for i, p in enumerate(ps):
        res[f"adamw.p{i}"] = p
        res[f"adamw.exp_avg{i}"] = opt.state[p]["exp_avg"]
    save_file({k: v.contiguous() for k, v in res.items()}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
