// Parity of kiln's GPT with an independent plain-PyTorch model (tests/reference/gpt_ref.py): kiln
// writes weights + inputs with save_safetensors, the script loads them with Python's
// `safetensors` package (no kiln code), and logits, loss, per-token loss and every gradient must
// agree in fp32 on the CPU. Needs KILN_PYTHON with torch and safetensors (skips otherwise).
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/config.h"
#include "model/gpt.h"
#include "model/safetensors.h"
#include "parity_util.h"
#include "test_util.h"

TEST(ModelParity, LogitsLossAndGradsMatchPyTorch) {
  if (!kiln::test::python_has_torch()) GTEST_SKIP() << KILN_PYTHON << " lacks torch/safetensors";
  // Small but complete: GQA (4 query heads, 2 kv heads), padded vocab (100 -> 128), 3 layers.
  kiln::ModelConfig m;
  m.depth = 3;
  m.width = 64;
  m.n_head = 4;
  m.n_kv_head = 2;
  m.seq_len = 24;
  const auto cfg = kiln::model::GPTConfig::from(m, 100);
  kiln::model::GPT model(cfg);
  model->init_weights(5);
  {
    // nanochat's init zeroes the head and residual projections, which would make most gradients
    // exactly zero; scale everything to random non-zero weights so every path is exercised.
    torch::NoGradGuard ng;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    for (auto& p : model->parameters()) p.normal_(0.0, 0.2, gen);
  }
  auto idx = torch::randint(cfg.vocab_size, {3, 24}, torch::kLong);
  auto tgt = torch::randint(cfg.vocab_size, {3, 24}, torch::kLong);
  tgt.index_put_({1, torch::indexing::Slice(20, 24)}, -1);  // ignored targets

  auto logits = model->forward(idx);
  auto per_token = model->forward_loss_per_token(idx, tgt);
  auto loss = model->forward(idx, tgt);
  loss.backward();

  std::map<std::string, std::string> meta{
      {"n_layer", std::to_string(cfg.n_layer)},     {"n_embd", std::to_string(cfg.n_embd)},
      {"n_head", std::to_string(cfg.n_head)},       {"n_kv_head", std::to_string(cfg.n_kv_head)},
      {"head_dim", std::to_string(cfg.head_dim)},   {"seq_len", std::to_string(cfg.seq_len)},
      {"vocab_size", std::to_string(cfg.vocab_size)}, {"padded_vocab_size", std::to_string(cfg.padded_vocab_size)},
      {"softcap", "15.0"},                          {"rope_base", "10000.0"}};
  auto ref = kiln::test::run_reference("gpt_ref.py", *model, {{"idx", idx}, {"targets", tgt}}, meta);

  // Tolerances: the issue asks 1e-5 relative for logits and loss in fp32. Both sides call the
  // same fp32 ATen kernels (measured: bit-equal logits and loss), but kiln runs q/k/v as one GEMM
  // and a fused softcap-CE, whose sums may be reordered by float ulps on other BLAS builds.
  std::cerr << "rel. error logits " << kiln::test::rel_err(logits, ref.at("logits")) << ", loss "
            << kiln::test::rel_err(loss.detach(), ref.at("loss")) << "\n";
  EXPECT_LT(kiln::test::rel_err(logits, ref.at("logits")), 1e-5);
  EXPECT_LT(kiln::test::rel_err(loss.detach(), ref.at("loss")), 1e-5);
  EXPECT_LT(kiln::test::rel_err(per_token, ref.at("per_token")), 1e-5);
  // Gradients pass through 3 layers of backward with its own reduction orders; 1e-4 relative to
  // each tensor's largest entry is ~200x the measured worst case (4.6e-7) yet far below what a
  // wrong formula gives (a missing norm, a swapped rotary sign or a wrong softcap derivative
  // changes gradients by > 1e-2 relative).
  kiln::test::expect_grads_match(*model, ref, 1e-4);
}
