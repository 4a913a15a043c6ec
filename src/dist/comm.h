// dist::Comm — the collectives the trainer needs (docs/architecture.md, "The parts"): NCCL for CUDA tensors on
// a dedicated stream ordered against the current stream with events, MPI for CPU tensors (so all
// distributed code is testable on CPU). The trainer never calls NCCL or MPI directly.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

namespace kiln::dist {

// Avg is exact averaging: MPI sums then divides by world; NCCL uses ncclAvg. Avg needs a
// floating-point tensor. On MPI, bf16/fp16 reduce through an fp32 copy (MPI has no such type).
enum class ReduceOp { Sum, Avg, Max };

// A launched collective; wait() orders the caller after it (CUDA: the current stream waits on an
// event, the CPU does not block; CPU: blocks until done). Waiting twice is a no-op.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

// Tensors must be contiguous and on the backend's device (CPU for mpi, the bound GPU for nccl).
// Every rank must issue the same collectives in the same order (MPI/NCCL semantics).
// MpiComm must be called from the thread that initialised MPI (MPI_THREAD_FUNNELED); on CPU,
// autograd runs backward (and so GradSync's hooks) on the calling thread, which satisfies it.
class Comm {
 public:
  virtual ~Comm() = default;
  // In place. async=true returns at once with a Work to wait on; false waits before returning.
  virtual std::shared_ptr<Work> all_reduce(torch::Tensor& t, ReduceOp op, bool async = false) = 0;
  // In place on `root`: t = the reduction of every rank's t; other ranks' t is left unchanged
  // (ZeRO-1 reduces each gradient bucket to the rank that owns it).
  virtual std::shared_ptr<Work> reduce(torch::Tensor& t, ReduceOp op, int root, bool async = false) = 0;
  // out = this rank's 1/world slice of the reduction of `in` (in.numel() divisible by world).
  virtual std::shared_ptr<Work> reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op,
                                               bool async = false) = 0;
  // out (world*in.numel()) = concatenation of every rank's `in`.
  virtual std::shared_ptr<Work> all_gather(const torch::Tensor& in, torch::Tensor& out, bool async = false) = 0;
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual std::string name() const = 0;  // "mpi" or "nccl"
  // Lets outstanding async collectives advance without waiting. MPI progresses non-blocking
  // collectives only inside MPI calls, so GradSync calls this from its hooks during backward;
  // NCCL progresses on its own (no-op).
  virtual void progress() {}
};

// backend: "auto" (nccl for a CUDA device, mpi otherwise), "mpi" or "nccl". Needs dist::init.
// For CUDA, binds local rank -> device first; too few GPUs is a kiln::Error. timeout_s (config
// dist.timeout_s) bounds every NCCL collective: one that has not finished by then aborts the job.
std::unique_ptr<Comm> make_comm(const std::string& backend, const torch::Device& device, double timeout_s);

// Binds this process to GPU `local_rank` (cudaSetDevice) and returns that device. A kiln::Error
// with a hint when fewer GPUs are visible than ranks on this node (or no CUDA in this build).
torch::Device bind_local_device();

// The device every binary runs on, decided here: `want` is "cpu", "cuda" (this rank's GPU by
// bind_local_device; a kiln::Error naming `key` when no CUDA device is visible) or "auto" (cuda
// when one is visible, else cpu). Anything else is a kiln::Error naming `key`.
torch::Device pick_device(const std::string& want, const std::string& key = "run.device");

}  // namespace kiln::dist
