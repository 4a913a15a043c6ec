// Optimizer parity with PyTorch (tests/reference/optim_ref.py): kiln's AdamW against
// torch.optim.AdamW and kiln's Muon against a transcription of nanochat's muon.py, on the same
// params and grads, over a few steps with changing lr multiplier / momentum (fp32, CPU).
// Needs KILN_PYTHON with torch and safetensors (skips otherwise).
#include <gtest/gtest.h>

#include <cstdlib>

#include "model/safetensors.h"
#include "optim/optimizers.h"
#include "test_util.h"

using namespace kiln::optim;

TEST(OptimParity, MuonAndAdamWMatchPyTorchReference) {
  if (!kiln::test::python_has_torch()) GTEST_SKIP() << KILN_PYTHON << " lacks torch/safetensors";
  // Square, wide and tall matrices (Muon transposes tall ones and scales by sqrt(rows/cols)).
  const std::vector<std::vector<int64_t>> shapes{{48, 48}, {32, 96}, {96, 32}, {64, 16}};
  const int64_t n = int64_t(shapes.size()), steps = 3;
  const double muon_lr = 0.02, adam_lr0 = 0.004, adam_lr1 = 0.2, b1 = 0.8, b2 = 0.95, eps = 1e-10, wd = 0.01;
  const std::vector<double> momenta{0.85, 0.9, 0.95}, lrms{1.0, 0.7, 0.3};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  kiln::model::NamedTensors in{{"num_params", torch::tensor(n)},  {"steps", torch::tensor(steps)},
                               {"muon_lr", torch::tensor(muon_lr, torch::kDouble)},
                               {"adam_lr0", torch::tensor(adam_lr0, torch::kDouble)},
                               {"adam_lr1", torch::tensor(adam_lr1, torch::kDouble)},
                               {"beta1", torch::tensor(b1, torch::kDouble)},
                               {"beta2", torch::tensor(b2, torch::kDouble)},
                               {"eps", torch::tensor(eps, torch::kDouble)},
                               {"weight_decay", torch::tensor(wd, torch::kDouble)}};
  std::vector<torch::Tensor> p0;
  std::vector<std::vector<torch::Tensor>> grads(steps);
  for (int64_t i = 0; i < n; ++i) {
    p0.push_back(torch::randn(shapes[i], gen) * 0.1);
    in.emplace_back("p" + std::to_string(i), p0.back());
    for (int64_t s = 0; s < steps; ++s) {
      grads[s].push_back(torch::randn(shapes[i], gen));
      in.emplace_back("g" + std::to_string(i) + "_s" + std::to_string(s), grads[s].back());
    }
  }
  for (int64_t s = 0; s < steps; ++s) {
    in.emplace_back("muon_momentum" + std::to_string(s), torch::tensor(momenta[s], torch::kDouble));
    in.emplace_back("lrm" + std::to_string(s), torch::tensor(lrms[s], torch::kDouble));
  }
  const auto dir = kiln::test::temp_dir();
  kiln::model::save_safetensors(dir + "/in.safetensors", in);
  const std::string cmd = std::string(KILN_PYTHON) + " " + kiln::test::source_dir() +
                          "/tests/reference/optim_ref.py " + dir + "/in.safetensors " + dir + "/out.safetensors";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto ref = kiln::model::load_safetensors(dir + "/out.safetensors");

  // kiln Muon, momentum set per step as the trainer's warmup schedule does.
  std::vector<torch::Tensor> pm;
  for (auto& p : p0) pm.push_back(p.clone().requires_grad_());
  Muon muon(pm, muon_lr, momenta[0]);
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t i = 0; i < n; ++i) pm[i].mutable_grad() = grads[s][i].clone();
    muon.set_momentum(momenta[s]);
    muon.step();
  }
  // kiln AdamW: groups {p0, p1} and {p2, p3}, multiplier per step.
  std::vector<torch::Tensor> pa;
  for (auto& p : p0) pa.push_back(p.clone().requires_grad_());
  AdamW adamw({{{pa[0], pa[1]}, adam_lr0}, {{pa[2], pa[3]}, adam_lr1}}, b1, b2, eps, wd);
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t i = 0; i < n; ++i) pa[i].mutable_grad() = grads[s][i].clone();
    adamw.set_lr_multiplier(lrms[s]);
    adamw.step();
  }
  auto st = adamw.state();
  std::map<std::string, torch::Tensor> amap(st.begin(), st.end());
  auto ms = muon.state();
  std::map<std::string, torch::Tensor> mmap(ms.begin(), ms.end());
  for (int64_t i = 0; i < n; ++i) {
    const auto k = std::to_string(i);
    // AdamW: same single-tensor formula, same fp32 kernels and double scalars as torch -> the
    // measured difference is 0; 1e-6 of the step allows a libm pow() that rounds differently.
    EXPECT_LT(kiln::test::rel_err(pa[i].detach() - p0[i], ref.at("adamw.p" + k) - p0[i]), 1e-6) << "adamw p" << k;
    EXPECT_LT(kiln::test::rel_err(amap.at("adamw." + k + ".exp_avg"), ref.at("adamw.exp_avg" + k)), 1e-6) << k;
    // Muon: momentum buffers are the same lerps (exact); the update goes through 5 Newton-Schulz
    // iterations of fp32 matmuls, where kiln fuses b*A + c*A@A into one addmm, so rounding
    // differs; measured 1.3e-6 .. 2.8e-6 of the update, 1e-4 leaves room for other BLAS blockings while a
    // wrong coefficient, transpose or scale shows up at > 1e-2.
    EXPECT_LT(kiln::test::rel_err(mmap.at("muon." + k + ".momentum_buffer"), ref.at("muon.buf" + k)), 1e-6) << k;
    EXPECT_LT(kiln::test::rel_err(pm[i].detach() - p0[i], ref.at("muon.p" + k) - p0[i]), 1e-4) << "muon p" << k;
    std::cerr << "p" << k << " rel. error of the update: AdamW "
              << kiln::test::rel_err(pa[i].detach() - p0[i], ref.at("adamw.p" + k) - p0[i]) << ", Muon "
              << kiln::test::rel_err(pm[i].detach() - p0[i], ref.at("muon.p" + k) - p0[i]) << "\n";
  }
}
