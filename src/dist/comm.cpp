// make_comm and device binding: picks the backend for a device and binds local rank -> GPU.
// Kept apart from the backends so that a build without NCCL (or without CUDA) still links and
// explains itself with a kiln::Error instead of a missing symbol.
#include "dist/comm.h"

#include <string>

#include "core/error.h"
#include "dist/check.h"
#include "dist/comm_backends.h"
#include "dist/dist.h"
#include "dist/watchdog.h"

#ifdef KILN_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace kiln::dist {

void check_scatter_gather_sizes(const char* what, const torch::Tensor& per_rank, const torch::Tensor& whole,
                                int world) {
  TORCH_CHECK(per_rank.scalar_type() == whole.scalar_type(), what, ": in and out dtypes differ");
  TORCH_CHECK(whole.numel() == per_rank.numel() * world, what, ": the full tensor has ", whole.numel(),
              " elements; it needs world (", world, ") x the per-rank tensor (", per_rank.numel(), ")");
}

torch::Device bind_local_device() {
  const Context& c = ctx();
#ifdef KILN_WITH_CUDA
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  std::string why;
  if (rc != cudaSuccess) {
    why = std::string(" (cudaGetDeviceCount: ") + cudaGetErrorString(rc) + ")";
    count = 0;
    (void)cudaGetLastError();  // clear the sticky error so later CUDA calls report their own
  }
  // Slurm --gpus-per-task=1 (or a per-rank CUDA_VISIBLE_DEVICES) shows each rank exactly one
  // GPU, always device 0, whatever its local rank.
  const int index = count == 1 ? 0 : c.local_rank;
  if (index >= count)
    throw Error("[dist] rank " + std::to_string(c.rank) + " is local rank " + std::to_string(c.local_rank) +
                    " of " + std::to_string(c.local_world) + " on host " + c.host + " but only " +
                    std::to_string(count) + " GPU(s) are visible" + why,
                "start at most one process per GPU on each node (mpirun -np <GPUs>, srun --ntasks-per-node="
                "<GPUs>), check CUDA_VISIBLE_DEVICES, or train on CPU with run.device=cpu");
  KILN_CUDA_CHECK(cudaSetDevice(index));
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
#else
  throw Error("[dist] rank " + std::to_string(c.rank) + ": this build has no CUDA",
              "rebuild against a LibTorch with CUDA (launch/setup.sh), or train on CPU with run.device=cpu");
#endif
}

torch::Device pick_device(const std::string& want, const std::string& key) {
  if (want != "auto" && want != "cpu" && want != "cuda")
    throw Error(key + " = " + want + " is not one of auto, cpu, cuda");
  const bool cuda = torch::cuda::is_available();
  if (want == "cuda" && !cuda)
    throw Error(key + " = cuda but no CUDA device is visible", "use " + key + " cpu (or auto)");
  if (want == "cuda" || (want == "auto" && cuda)) return bind_local_device();  // local rank -> GPU
  return torch::kCPU;
}

std::unique_ptr<Comm> make_comm(const std::string& backend, const torch::Device& device, double timeout_s) {
  if (backend != "auto" && backend != "mpi" && backend != "nccl")
    throw Error("[dist] dist.backend: unknown value '" + backend + "'", "use auto, nccl or mpi");
  if (!ctx().initialized)
    throw Error("[dist] make_comm called before dist::init", "call dist::init(&argc, &argv) first in main()");
  if (timeout_s <= 0)
    throw Error("[dist] dist.timeout_s must be > 0, got " + std::to_string(timeout_s),
                "use the number of seconds after which a stuck collective aborts the job (default 600)");
  set_collective_timeout(timeout_s);  // MPI waits (watchdog.h); NCCL has its own watchdog
  const bool cuda = device.is_cuda();
  if (backend == "mpi" || (backend == "auto" && !cuda)) {
    if (cuda)
      throw Error("[dist] dist.backend=mpi reduces CPU tensors only, but the run is on " + device.str(),
                  "use dist.backend=auto or nccl for GPUs, or run.device=cpu for MPI");
    return make_mpi_comm();
  }
  if (!cuda)
    throw Error("[dist] dist.backend=nccl needs a CUDA device, but the run is on " + device.str(),
                "use dist.backend=auto or mpi on CPU");
  torch::Device bound = bind_local_device();
#ifdef KILN_WITH_NCCL
  return make_nccl_comm(bound, timeout_s);
#else
  (void)bound;
  throw Error("[dist] this build has CUDA but no NCCL, so CUDA tensors cannot be reduced",
              "install NCCL (the nvidia-nccl wheel torch depends on provides it) and re-run cmake");
#endif
}

}  // namespace kiln::dist
