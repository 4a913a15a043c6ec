// Pieces shared by the nanochat GPTs (V1 in gpt.cpp, the current one in gpt_v2.cpp): the
// weight-only linear module and the block's modules, the weightless RMSNorm, relu^2 as one autograd node, the rotary
// tables and rotation, and the softcapped head's logits and loss. Private to model/.
#pragma once
#include <torch/torch.h>

#include <optional>

#include "model/gpt.h"
#include "model/softcap_ce.h"

namespace kiln::model::parts {

// A bias-free linear layer that only holds "weight" (out, in); allocated uninitialised because
// init_weights() (or a checkpoint) always overwrites it, and so that a d20 on the meta device
// costs nothing.
struct WeightOnly : torch::nn::Module {
  torch::Tensor weight;
  WeightOnly(int64_t out, int64_t in, const torch::TensorOptions& o) {
    weight = register_parameter("weight", torch::empty({out, in}, o));
  }
};

// A transformer block's modules, named as nanochat's (attn.c_q ... mlp.c_proj). ve_gate_in > 0:
// the value-embedding gate of nanochat2 (attn.ve_gate, (n_kv_head, ve_gate_in)) on this layer.
struct Attn : torch::nn::Module {
  std::shared_ptr<WeightOnly> c_q, c_k, c_v, c_proj, ve_gate;
  Attn(const GPTConfig& c, int64_t ve_gate_in, const torch::TensorOptions& o) {
    c_q = register_module("c_q", std::make_shared<WeightOnly>(c.n_head * c.head_dim, c.n_embd, o));
    c_k = register_module("c_k", std::make_shared<WeightOnly>(c.n_kv_head * c.head_dim, c.n_embd, o));
    c_v = register_module("c_v", std::make_shared<WeightOnly>(c.n_kv_head * c.head_dim, c.n_embd, o));
    c_proj = register_module("c_proj", std::make_shared<WeightOnly>(c.n_embd, c.n_head * c.head_dim, o));
    if (ve_gate_in > 0) ve_gate = register_module("ve_gate", std::make_shared<WeightOnly>(c.n_kv_head, ve_gate_in, o));
  }
};

struct Mlp : torch::nn::Module {
  std::shared_ptr<WeightOnly> c_fc, c_proj;
  Mlp(const GPTConfig& c, const torch::TensorOptions& o) {
    c_fc = register_module("c_fc", std::make_shared<WeightOnly>(4 * c.n_embd, c.n_embd, o));
    c_proj = register_module("c_proj", std::make_shared<WeightOnly>(c.n_embd, 4 * c.n_embd, o));
  }
};

struct Block : torch::nn::Module {
  std::shared_ptr<Attn> attn;
  std::shared_ptr<Mlp> mlp;
  Block(const GPTConfig& c, int64_t ve_gate_in, const torch::TensorOptions& o) {
    attn = register_module("attn", std::make_shared<Attn>(c, ve_gate_in, o));
    mlp = register_module("mlp", std::make_shared<Mlp>(c, o));
  }
};

// Weightless RMSNorm over the last dimension; eps 0 = finfo(dtype).eps as F.rms_norm's default
// (nanochat), else model.norm_eps (an imported model's rms_norm_eps, e.g. transformers' 1e-6).
inline torch::Tensor rms_norm(const torch::Tensor& x, double eps) {
  return at::rms_norm(x, {x.size(-1)}, std::nullopt, eps > 0 ? std::optional<double>(eps) : std::nullopt);
}

// relu(x)^2 as one autograd node. Eager ATen records relu and pow: backward runs pow's
// grad * (2 * u.pow(1)) (three passes over the MLP's widest activation) and then relu's threshold.
// Here backward is grad * (2 * r) with r = relu(x) saved: two passes, the same numbers bit for bit
// (2 * r is exact, and r is 0 wherever relu's gradient is).
struct ReluSquared : public torch::autograd::Function<ReluSquared> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto r = at::relu(x);
    ctx->save_for_backward({r});
    return r * r;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto r = ctx->get_saved_variables()[0];
    return {grads[0] * (r * 2)};
  }
};

// Rotary tables cos, sin (1, T, 1, D/2) in fp32 for positions 0..T-1 (meta: shapes only).
struct RotaryTables {
  torch::Tensor cos, sin;
};
RotaryTables rotary_tables(int64_t T, int64_t D, double base, const torch::Device& device);

// nanochat's half-split rotation of t (B, T, heads, D) by tables broadcastable to (B, T, 1, D/2):
// y1 = x1*cos + x2*sin, y2 = x1*(-sin) + x2*cos. The tables follow t's dtype (bf16 under
// autocast); the cast happens once per forward, on the first call.
class Rotary {
 public:
  Rotary(torch::Tensor cos, torch::Tensor sin) : cos_(std::move(cos)), sin_(std::move(sin)) {}
  torch::Tensor operator()(const torch::Tensor& t);

 private:
  torch::Tensor cos_, sin_, neg_sin_;
};

// The head's logits in fp32, softcapped s * tanh(z / s) (s <= 0: none); z is the raw head output
// over the real vocabulary.
torch::Tensor softcap_logits(const torch::Tensor& z, double softcap);
// Cross-entropy of the raw head output z (B, T, Vp >= vocab) against targets (B, T) (-1 ignored):
// with a softcap the fused softcap_cross_entropy (softcap_ce.h), else plain CE over the first
// `vocab` logits in fp32. kMean: a scalar; kNone: (B, T).
torch::Tensor head_loss(const torch::Tensor& z, const torch::Tensor& targets, int64_t vocab, double softcap,
                        LossReduction reduction);

}  // namespace kiln::model::parts
