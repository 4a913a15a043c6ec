// The fused softcap + cross-entropy of softcap_ce.h. Forward saves the logits, targets and each
// row's log-sum-exp; backward recomputes tanh per chunk and writes the logits' gradient directly:
// d/dz = (softmax(zc) - onehot(target)) * (1 - tanh^2(z/s)) * dL/dloss_row.
#include "model/softcap_ce.h"

namespace kiln::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per chunk: bounds the fp32 temporaries (a few chunk x V tensors) to ~256 MB on a GPU and
// to ~1 MB on the CPU, where staying in cache matters more than launching fewer ops.
int64_t chunk_rows(const torch::Tensor& logits, int64_t vocab) {
  const int64_t elems = logits.is_cuda() ? (int64_t(1) << 26) : (int64_t(1) << 18);
  return std::max<int64_t>(1, elems / std::max<int64_t>(1, vocab));
}

// Capped logits of rows [r, r+n) in fp32: returns t = tanh(z/s) (zc = s*t).
torch::Tensor tanh_chunk(const torch::Tensor& logits, int64_t r, int64_t n, int64_t vocab, double s) {
  auto z = logits.narrow(0, r, n).narrow(1, 0, vocab);
  if (z.scalar_type() == torch::kFloat32) return (z / s).tanh_();  // a view: never write into it
  return z.to(torch::kFloat32).div_(s).tanh_();
}

struct SoftcapCE : public torch::autograd::Function<SoftcapCE> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits, const torch::Tensor& targets,
                               int64_t vocab, double s, int64_t reduction) {
    const int64_t N = logits.size(0), step = chunk_rows(logits, vocab);
    auto loss = torch::empty({N}, logits.options().dtype(torch::kFloat32));
    auto lse = torch::empty({N}, loss.options());
    for (int64_t r = 0; r < N; r += step) {
      const int64_t n = std::min(step, N - r);
      auto zc = tanh_chunk(logits, r, n, vocab, s).mul_(s);
      auto l = lse.narrow(0, r, n);
      at::logsumexp_out(l, zc, {1});
      auto tgt = targets.narrow(0, r, n);
      auto picked = zc.gather(1, tgt.clamp_min(0).unsqueeze(1)).squeeze(1);
      loss.narrow(0, r, n).copy_((l - picked).masked_fill_(tgt < 0, 0.0));
    }
    ctx->save_for_backward({logits, targets, lse});
    ctx->saved_data["vocab"] = vocab;
    ctx->saved_data["s"] = s;
    ctx->saved_data["reduction"] = reduction;
    if (reduction == int64_t(LossReduction::kNone)) return loss;
    auto n_valid = (targets >= 0).sum();
    ctx->saved_data["n_valid"] = n_valid;
    return loss.sum() / n_valid;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &logits = saved[0], &targets = saved[1], &lse = saved[2];
    const int64_t vocab = ctx->saved_data["vocab"].toInt();
    const double s = ctx->saved_data["s"].toDouble();
    const bool mean = ctx->saved_data["reduction"].toInt() == int64_t(LossReduction::kMean);
    const int64_t N = logits.size(0), Vp = logits.size(1), step = chunk_rows(logits, vocab);
    // Per-row weight dL/dloss_row (0 for ignored rows): grad/n_valid for the mean, else grad[row].
    auto valid = (targets >= 0).to(torch::kFloat32);
    auto row_w = mean ? valid * (grads[0].to(torch::kFloat32) / ctx->saved_data["n_valid"].toTensor())
                      : valid * grads[0].to(torch::kFloat32);
    auto grad = torch::empty_like(logits);
    if (Vp > vocab) grad.narrow(1, vocab, Vp - vocab).zero_();  // padding columns never matter
    for (int64_t r = 0; r < N; r += step) {
      const int64_t n = std::min(step, N - r);
      auto t = tanh_chunk(logits, r, n, vocab, s);
      auto p = (t * s).sub_(lse.narrow(0, r, n).unsqueeze(1)).exp_();  // softmax of capped logits
      auto tgt = targets.narrow(0, r, n).clamp_min(0).unsqueeze(1);
      auto w = row_w.narrow(0, r, n).unsqueeze(1);
      p.scatter_add_(1, tgt, -valid.narrow(0, r, n).unsqueeze(1));  // - onehot(target)
      p.mul_(w).mul_(t.mul_(t).neg_().add_(1.0));                     // * w * (1 - tanh^2)
      grad.narrow(0, r, n).narrow(1, 0, vocab).copy_(p);
    }
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor softcap_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets, int64_t vocab,
                                    double softcap, LossReduction reduction) {
  TORCH_CHECK(logits.dim() == 2 && targets.dim() == 1 && logits.size(0) == targets.size(0),
              "softcap_cross_entropy: logits (N, V) and targets (N) expected");
  TORCH_CHECK(vocab > 0 && vocab <= logits.size(1) && softcap > 0, "softcap_cross_entropy: bad vocab/softcap");
  return SoftcapCE::apply(logits, targets, vocab, softcap, int64_t(reduction));
}

}  // namespace kiln::model
