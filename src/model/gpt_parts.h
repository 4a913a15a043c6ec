// Pieces shared by the nanochat GPTs (V1 in gpt.cpp, the current one in gpt_v2.cpp): the
// weight-only linear module and the block's modules, the rotary tables and rotation, and the
// softcapped head's logits and loss (RMSNorm and relu^2 are model/fused_ops.h's). Private to model/.
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
  torch::Tensor cos_, sin_;
  bool cast_ = false;
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
