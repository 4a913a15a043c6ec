// The shared pieces of the nanochat GPTs; see gpt_parts.h.
#include "model/gpt_parts.h"

#include "model/fused_ops.h"

namespace kiln::model::parts {

RotaryTables rotary_tables(int64_t T, int64_t D, double base, const torch::Device& device) {
  const auto o = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  if (device.is_meta()) return {torch::empty({1, T, 1, D / 2}, o), torch::empty({1, T, 1, D / 2}, o)};
  auto f = torch::TensorOptions().dtype(torch::kFloat32);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(base, f), torch::arange(0, D, 2, f) / double(D));
  auto freqs = torch::outer(torch::arange(T, f), inv_freq);  // (T, D/2)
  return {freqs.cos().view({1, T, 1, D / 2}).to(device), freqs.sin().view({1, T, 1, D / 2}).to(device)};
}

// Note [Rotary]: nanochat's half-split rotation, written out as nanochat writes it (model::rotary:
// on the CPU in fp32 one fused pass each way with the same bits, fused_ops.h). A one-addcmul
// form over full-width tables ([cos, cos], [sin, -sin], rotate_half) was tried and measured 25-35%
// slower forward and backward on the CPU (tiny shape): its broadcast over the strided q|k view is
// slower than four half-width multiplies.
torch::Tensor Rotary::operator()(const torch::Tensor& t) {
  if (!cast_ && cos_.scalar_type() != t.scalar_type()) {  // bf16 under autocast: tables follow
    cos_ = cos_.to(t.scalar_type());
    sin_ = sin_.to(t.scalar_type());
  }
  cast_ = true;
  // Note [Split, not narrow]: the backward of narrow (SliceBackward) allocates a zero tensor of
  // the whole input per slice, copies the slice's gradient in and adds them up; split's backward
  // is one cat. Profiled (bench_train_step --profile): on the H200 at d20, batch 16, zero fills took
  // 7 ms and copies 38 ms of 450 ms of kernels per step; on the CPU SliceBackward took 1.4 s of a
  // 48 s shakespeare_char step (2 cores under load). model::rotary's composite splits; its CPU
  // kernel reads the halves in place.
  return model::rotary(t, cos_, sin_);
}

torch::Tensor softcap_logits(const torch::Tensor& z, double softcap) {
  auto l = z.to(torch::kFloat32);
  if (softcap > 0) l = at::tanh(l / softcap) * softcap;
  return l;
}

// With a softcap the cap and the loss run fused on the raw (padded) head output; see softcap_ce.h
// for why (memory: no fp32 (N, V) tensors kept for backward).
torch::Tensor head_loss(const torch::Tensor& z, const torch::Tensor& targets, int64_t vocab, double softcap,
                        LossReduction reduction) {
  TORCH_CHECK(z.dim() == 3 && targets.dim() == 2, "head_loss: z must be (B, T, V) and targets (B, T)");
  const bool per_token = reduction == LossReduction::kNone;
  torch::Tensor l;
  if (softcap <= 0) {
    auto logits = z.narrow(-1, 0, vocab).to(torch::kFloat32);
    l = at::cross_entropy_loss(logits.reshape({-1, vocab}), targets.reshape({-1}), {},
                               per_token ? at::Reduction::None : at::Reduction::Mean, -1);
  } else {
    l = softcap_cross_entropy(z.view({-1, z.size(-1)}), targets.reshape({-1}), vocab, softcap, reduction);
  }
  return per_token ? l.view(targets.sizes()) : l;
}

}  // namespace kiln::model::parts
