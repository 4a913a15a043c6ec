// Internal to src/dist: the factories behind make_comm, one per backend, so that comm.cpp builds
// without NCCL (the *_nccl.cpp files are dropped by CMake when NCCL is absent, and
// KILN_WITH_NCCL tells comm.cpp whether make_nccl_comm exists).
#pragma once
#include <memory>

#include "dist/comm.h"

namespace kiln::dist {

// The backend-independent contract of reduce_scatter / all_gather (comm.h): same dtype, and the
// gathered side holds world times the per-rank side. TORCH_CHECKs naming the collective.
void check_scatter_gather_sizes(const char* what, const torch::Tensor& per_rank, const torch::Tensor& whole,
                                int world);

std::unique_ptr<Comm> make_mpi_comm();
#ifdef KILN_WITH_NCCL
// device: the GPU this rank was bound to by bind_local_device().
std::unique_ptr<Comm> make_nccl_comm(const torch::Device& device, double timeout_s);
#endif

}  // namespace kiln::dist
