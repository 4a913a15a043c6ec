// Shared by the model parity tests (ModelParity, ModelParityV2): run a plain-PyTorch reference
// script under KILN_PYTHON on weights and inputs written with save_safetensors, and compare every
// parameter's gradient with the reference's.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "model/safetensors.h"
#include "test_util.h"

namespace kiln::test {

// Writes `in` (with the model's parameters as "param.<name>") and `meta` to a temporary
// in.safetensors, runs tests/reference/<script> in -> out, and returns out's tensors.
inline std::map<std::string, torch::Tensor> run_reference(const std::string& script, const torch::nn::Module& model,
                                                          kiln::model::NamedTensors in,
                                                          const std::map<std::string, std::string>& meta) {
  const auto dir = temp_dir();
  for (const auto& p : model.named_parameters()) in.emplace_back("param." + p.key(), p.value());
  kiln::model::save_safetensors(dir + "/in.safetensors", in, meta);
  const std::string cmd = std::string(KILN_PYTHON) + " " + source_dir() + "/tests/reference/" + script + " " + dir +
                          "/in.safetensors " + dir + "/out.safetensors";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return kiln::model::load_safetensors(dir + "/out.safetensors");
}

// Every parameter's gradient against the reference's "grad.<name>": non-zero there (else the
// test is vacuous) and within `bound` relative to the tensor's largest entry. Prints the worst.
inline void expect_grads_match(const torch::nn::Module& model, const std::map<std::string, torch::Tensor>& ref,
                               double bound) {
  double worst = 0;
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    const auto& g = ref.at("grad." + p.key());
    ASSERT_EQ(g.sizes(), p.value().sizes()) << p.key();
    EXPECT_GT(g.abs().max().item<double>(), 0.0) << p.key() << ": reference gradient is zero, test is vacuous";
    const double e = rel_err(p.value().grad(), g);
    worst = std::max(worst, e);
    EXPECT_LT(e, bound) << p.key();
  }
  std::cerr << "worst gradient rel. error " << worst << "\n";
}

}  // namespace kiln::test
