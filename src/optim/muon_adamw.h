// The per-parameter update rules of nanochat's current MuonAdamW (nanochat/optim.py at 92d63d4):
// muon_step_fused (Nesterov momentum, MuonEq row equilibration, Polar Express, Muon+ norm snap,
// NorMuon variance reduction, cautious weight decay) and adamw_step_fused (fp32 math, fp32
// scalars). nanochat stacks same-shape matrices and steps them together; every operation is
// per matrix, so kiln steps each parameter alone (ZeRO-1 owners hold whole parameters) and gets
// the same numbers. The Muon and AdamW classes (optimizers.h) call these for optim.recipe muon_adamw.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>

namespace kiln::optim {

// Polar Express coefficients (a, b, c) for 5 iterations (arXiv 2505.16932), as optim.py.
extern const std::array<std::array<double, 3>, 5> kPolarExpressCoeffs;

// The orthogonalised update of X (2-D): Frobenius-normalised, then `steps` Polar Express
// iterations (tall matrices iterate on X^T X). Works in X's dtype.
torch::Tensor polar_express(torch::Tensor X, int64_t steps);

// The NorMuon second-moment buffer's shape for a parameter: (rows, 1) when rows >= cols, else (1, cols).
std::vector<int64_t> normuon_second_moment_shape(const torch::Tensor& param);

// One muon_step_fused on one matrix. grad is overwritten (Nesterov look-ahead, as nanochat);
// lr already includes the sqrt(max(1, rows/cols)) shape scale. bf16 orthogonalisation on CUDA
// (nanochat's COMPUTE_DTYPE there), fp32 on the CPU.
void normuon_update(torch::Tensor& param, torch::Tensor& grad, torch::Tensor& momentum_buffer,
                    torch::Tensor& second_momentum_buffer, double momentum, double lr, double weight_decay,
                    double beta2, int64_t ns_steps);

// One adamw_step_fused on one tensor: decoupled weight decay, lerp moments, bias correction, with
// the math in fp32 and the scalars rounded to fp32 first (nanochat's 0-D fp32 tensors). `step` is
// the parameter's step count after this step (1 on the first).
void adamw_fused_update(torch::Tensor& param, const torch::Tensor& grad, torch::Tensor& exp_avg,
                        torch::Tensor& exp_avg_sq, int64_t step, double lr, double beta1, double beta2, double eps,
                        double weight_decay);

}  // namespace kiln::optim
