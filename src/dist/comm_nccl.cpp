// NcclComm: dist::Comm over NCCL for CUDA tensors. One communicator per job from an ncclUniqueId
// broadcast over MPI; collectives run on a private stream ordered against LibTorch's current
// stream with events; a watchdog thread turns a dead or stuck peer into a job abort, not a hang.
// Compiled and linked in CI; never run there (no GPU). See Note [NCCL watchdog].
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <deque>
#include <mutex>
#include <string>
#include <exception>
#include <thread>

#include "dist/check.h"
#include "dist/comm.h"
#include "dist/comm_backends.h"
#include "dist/dist.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 10, 0)
#error "kiln needs NCCL >= 2.10 (ncclAvg)"
#endif

namespace kiln::dist {
namespace {

ncclDataType_t nccl_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return ncclFloat32;
    case torch::kDouble: return ncclFloat64;
    case torch::kHalf: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kInt: return ncclInt32;
    case torch::kLong: return ncclInt64;
    case torch::kByte: return ncclUint8;
    case torch::kChar: return ncclInt8;
    default: TORCH_CHECK(false, "NcclComm: unsupported dtype ", t);
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
  }
  return ncclSum;
}

// A cudaEvent_t owned by shared_ptr: the Work and the watchdog both hold the done event.
struct Event {
  cudaEvent_t e = nullptr;
  Event() { KILN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming)); }
  ~Event() { cudaEventDestroy(e); }  // legal while pending; freed once it completes
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
};

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<Event> done, c10::DeviceIndex dev) : done_(std::move(done)), dev_(dev) {}
  // Orders the caller's current stream after the collective; the CPU does not block.
  void wait() override {
    c10::cuda::CUDAGuard g(dev_);
    KILN_CUDA_CHECK(cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(dev_).stream(), done_->e, 0));
  }

 private:
  std::shared_ptr<Event> done_;
  c10::DeviceIndex dev_;
};

// Note [NCCL watchdog]
// A blocking NCCL communicator never returns an error for a peer that died or stopped calling
// collectives: the kernels spin forever. Like ProcessGroupNCCL's watchdog, a thread polls every
// 100 ms (a) ncclCommGetAsyncError and (b) the done event of each collective in flight, oldest
// first. An async error, a CUDA error, or a collective older than dist.timeout_s prints what
// happened on this rank, calls ncclCommAbort (which makes the spinning kernels return) and
// MPI_Abort, so mpirun/srun take every rank down and the job exits non-zero. MPI_Abort is
// called from the watchdog thread although MPI was initialised FUNNELED: it is the last call the
// process makes, and OpenMPI implements it as a message to the launcher plus exit. A peer that
// is killed outright (SIGKILL, node loss) is also caught by the launcher, which kills the job.
// The timer starts at enqueue, so timeout_s must exceed the longest compute that can precede a
// collective on the stream (a step); the default 600 s is far above that.
class NcclComm : public Comm {
 public:
  NcclComm(const torch::Device& device, double timeout_s)
      : dev_(device.index()), timeout_s_(timeout_s),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, dev_)) {
    const Context& c = ctx();
    rank_ = c.rank;
    world_ = c.world;
    ncclUniqueId id;
    if (rank_ == 0) KILN_NCCL_CHECK(ncclGetUniqueId(&id));
    KILN_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD));
    c10::cuda::CUDAGuard g(dev_);
    KILN_NCCL_CHECK(ncclCommInitRank(&comm_, world_, id, rank_));
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclComm() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    c10::cuda::CUDAGuard g(dev_);
    // Note [NCCL teardown]: ncclCommDestroy (and a stream sync before it) wait for every
    // collective in flight, and one whose peer died never finishes: a failing rank would hang
    // here instead of exiting. As c10d's ProcessGroupNCCL does, abort the communicator first
    // (ncclCommAbort returns without waiting and makes stuck kernels return) whenever teardown
    // is not clean: an async NCCL error, a collective not yet complete, or an exception unwinding
    // through us. Only a clean communicator is synchronised and destroyed. Unverified without a
    // GPU: correct by construction against NCCL's documented semantics.
    if (!clean_for_destroy()) {
      ncclCommAbort(comm_);
      return;
    }
    cudaStreamSynchronize(stream_.stream());
    ncclCommDestroy(comm_);
  }

  // True when nothing can block destroy: no async error, every collective complete, and no
  // exception in flight (the error path of a failing rank).
  bool clean_for_destroy() {
    if (std::uncaught_exceptions() > 0) return false;
    ncclResult_t async_err = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &async_err) != ncclSuccess || async_err != ncclSuccess) return false;
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& p : in_flight_)
      if (cudaEventQuery(p.done->e) != cudaSuccess) return false;
    return true;
  }

  std::shared_ptr<Work> all_reduce(torch::Tensor& t, ReduceOp op, bool async) override {
    check(t, "all_reduce");
    check_op(t, op);
    return launch("all_reduce", {t}, async, [&](cudaStream_t s) {
      KILN_NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()),
                                    nccl_op(op), comm_, s));
    });
  }

  std::shared_ptr<Work> reduce(torch::Tensor& t, ReduceOp op, int root, bool async) override {
    check(t, "reduce");
    check_op(t, op);
    TORCH_CHECK(root >= 0 && root < world_, "reduce: root ", root, " is not a rank of ", world_);
    return launch("reduce", {t}, async, [&](cudaStream_t s) {
      KILN_NCCL_CHECK(ncclReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), nccl_op(op), root,
                                 comm_, s));
    });
  }

  std::shared_ptr<Work> reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op,
                                       bool async) override {
    check(in, "reduce_scatter");
    check(out, "reduce_scatter");
    check_scatter_gather_sizes("reduce_scatter", out, in, world_);
    check_op(in, op);
    return launch("reduce_scatter", {in, out}, async, [&](cudaStream_t s) {
      KILN_NCCL_CHECK(ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(), nccl_type(out.scalar_type()),
                                        nccl_op(op), comm_, s));
    });
  }

  std::shared_ptr<Work> all_gather(const torch::Tensor& in, torch::Tensor& out, bool async) override {
    check(in, "all_gather");
    check(out, "all_gather");
    check_scatter_gather_sizes("all_gather", in, out, world_);
    return launch("all_gather", {in, out}, async, [&](cudaStream_t s) {
      KILN_NCCL_CHECK(ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), nccl_type(in.scalar_type()),
                                    comm_, s));
    });
  }

  void broadcast(torch::Tensor& t, int root) override {
    check(t, "broadcast");
    TORCH_CHECK(root >= 0 && root < world_, "broadcast: root ", root, " is not a rank of ", world_);
    launch("broadcast", {t}, false, [&](cudaStream_t s) {
      KILN_NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), root,
                                    comm_, s));
    });
  }

  // A one-element all-reduce, then the host waits for it: every rank has reached this point.
  void barrier() override {
    c10::cuda::CUDAGuard g(dev_);
    auto t = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA, dev_));
    all_reduce(t, ReduceOp::Sum, false);
    KILN_CUDA_CHECK(cudaStreamSynchronize(c10::cuda::getCurrentCUDAStream(dev_).stream()));
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string name() const override { return "nccl"; }

 private:
  void check(const torch::Tensor& t, const char* what) const {
    TORCH_CHECK(t.defined(), what, ": undefined tensor");
    TORCH_CHECK(t.is_cuda() && t.device().index() == dev_, what, ": NcclComm reduces tensors on cuda:", int(dev_),
                "; got one on ", t.device());
    TORCH_CHECK(t.is_contiguous(), what, ": the tensor must be contiguous");
  }

  // Same rule as MpiComm, so code tested on CPU behaves alike on GPU.
  static void check_op(const torch::Tensor& t, ReduceOp op) {
    if (op == ReduceOp::Avg)
      TORCH_CHECK(t.is_floating_point(), "ReduceOp::Avg needs a floating-point tensor, got ", t.scalar_type());
  }

  // The ordering recipe: current stream --ready event--> comm stream: collective --done event-->
  // (Work::wait) current stream. recordStream tells the caching allocator that the tensors are
  // in use on the comm stream, so their memory is not reused before the collective finishes.
  template <class F>
  std::shared_ptr<Work> launch(const char* what, std::initializer_list<torch::Tensor> tensors, bool async,
                               F&& enqueue) {
    c10::cuda::CUDAGuard g(dev_);
    cudaStream_t cur = c10::cuda::getCurrentCUDAStream(dev_).stream();
    Event ready;
    KILN_CUDA_CHECK(cudaEventRecord(ready.e, cur));
    KILN_CUDA_CHECK(cudaStreamWaitEvent(stream_.stream(), ready.e, 0));
    enqueue(stream_.stream());
    for (const auto& t : tensors) c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
    auto done = std::make_shared<Event>();
    KILN_CUDA_CHECK(cudaEventRecord(done->e, stream_.stream()));
    {
      std::lock_guard<std::mutex> l(mu_);
      in_flight_.push_back({done, std::chrono::steady_clock::now(), what});
    }
    auto w = std::make_shared<NcclWork>(done, dev_);
    if (!async) w->wait();
    return w;
  }

  // See Note [NCCL watchdog].
  void watch() {
    KILN_CUDA_CHECK(cudaSetDevice(dev_));  // events and the communicator belong to this device
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait_for(l, std::chrono::milliseconds(100));
      if (stop_) break;
      ncclResult_t async_err = ncclSuccess;
      ncclResult_t rc = ncclCommGetAsyncError(comm_, &async_err);
      if (rc != ncclSuccess) fail(std::string("ncclCommGetAsyncError failed: ") + ncclGetErrorString(rc));
      if (async_err != ncclSuccess && async_err != ncclInProgress)
        fail(std::string("NCCL async error: ") + ncclGetErrorString(async_err) +
             " (a peer died or the network failed)");
      while (!in_flight_.empty()) {
        const Pending& p = in_flight_.front();
        cudaError_t q = cudaEventQuery(p.done->e);
        if (q == cudaSuccess) {
          in_flight_.pop_front();
          continue;
        }
        if (q != cudaErrorNotReady) fail(std::string("CUDA error while waiting for ") + p.what + ": " +
                                         cudaGetErrorString(q));
        const double age = std::chrono::duration<double>(std::chrono::steady_clock::now() - p.start).count();
        if (age > timeout_s_)
          fail(std::string(p.what) + " has not finished after " + std::to_string(int(age)) +
               " s (dist.timeout_s=" + std::to_string(int(timeout_s_)) +
               "): a peer rank is dead or stuck; aborting the job");
        break;
      }
    }
  }

  [[noreturn]] void fail(const std::string& why) {
    fprintf(stderr, "[rank %d] [dist] NCCL watchdog: %s\n", rank_, why.c_str());
    fflush(stderr);
    ncclCommAbort(comm_);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

  struct Pending {
    std::shared_ptr<Event> done;
    std::chrono::steady_clock::time_point start;
    const char* what;
  };

  c10::DeviceIndex dev_;
  double timeout_s_;
  c10::cuda::CUDAStream stream_;
  ncclComm_t comm_ = nullptr;
  int rank_ = 0;
  int world_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<Pending> in_flight_;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(const torch::Device& device, double timeout_s) {
  return std::make_unique<NcclComm>(device, timeout_s);
}

}  // namespace kiln::dist
