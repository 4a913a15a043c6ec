// dist::Comm — the collectives the trainer needs (ARCHITECTURE.md §4): NCCL for CUDA tensors on
// a dedicated stream ordered against the current stream with events, MPI for CPU tensors (so all
// distributed code is testable on CPU). The trainer never calls NCCL or MPI directly.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

namespace kiln::dist {

enum class ReduceOp { Sum, Avg, Max };

// A launched collective; wait() orders the caller after it (CUDA: the current stream waits on an
// event; CPU: blocks until done).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;
  // In place. async=true returns at once with a Work to wait on; false waits before returning.
  virtual std::shared_ptr<Work> all_reduce(torch::Tensor& t, ReduceOp op, bool async = false) = 0;
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
};

// backend: "auto" (nccl for a CUDA device, mpi otherwise), "mpi" or "nccl". Needs dist::init.
// For CUDA, binds local rank -> device first; too few GPUs is a kiln::Error.
std::unique_ptr<Comm> make_comm(const std::string& backend, const torch::Device& device, double timeout_s);

}  // namespace kiln::dist
