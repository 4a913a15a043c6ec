// MpiComm: dist::Comm over MPI for CPU tensors, so every distributed code path runs in CI on two
// CPU ranks. Non-blocking MPI_I* collectives on a private duplicate of MPI_COMM_WORLD (so they
// never interleave with dist.h's host collectives); Avg is an exact sum followed by a division.
// Every wait goes through the watchdog (watchdog.h), so a dead peer aborts after dist.timeout_s.
#include <mpi.h>

#include <climits>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dist/check.h"
#include "dist/comm.h"
#include "dist/comm_backends.h"
#include "dist/dist.h"
#include "dist/watchdog.h"

namespace kiln::dist {
namespace {

// The MPI type for a reduction in this dtype; MPI_DATATYPE_NULL when MPI has none (bf16, fp16),
// in which case the reduction runs on an fp32 copy.
MPI_Datatype reduce_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kInt: return MPI_INT32_T;
    case torch::kLong: return MPI_INT64_T;
    case torch::kByte: return MPI_UINT8_T;
    case torch::kChar: return MPI_INT8_T;
    case torch::kShort: return MPI_INT16_T;
    default: return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }

// A launched MPI collective: its requests, the tensors they touch (kept alive until done), and a
// step that runs once they complete (Avg's division, copy-back from an fp32 staging copy).
class MpiWork : public Work {
 public:
  std::vector<MPI_Request> reqs;
  std::vector<torch::Tensor> keep;
  std::function<void()> after;
  uint64_t seq = next_collective();  // numbered at launch, the same order on every rank
  const char* what = "";

  explicit MpiWork(const char* w) : what(w) {}

  void wait() override {
    if (done_) return;
    if (!reqs.empty()) watched_wait(static_cast<int>(reqs.size()), reqs.data(), seq, what);
    complete();
  }
  // Advances MPI's progress engine; true when the collective has finished.
  bool test() {
    if (done_) return true;
    int flag = 0;
    KILN_MPI_CHECK(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &flag, MPI_STATUSES_IGNORE));
    if (flag) complete();
    return done_;
  }
  // MPI needs every request completed before its buffers go; a dropped Work is waited for.
  ~MpiWork() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!done_ && !fin) wait();
  }

 private:
  void complete() {
    reqs.clear();
    if (after) after();
    after = nullptr;
    keep.clear();
    done_ = true;
  }
  bool done_ = false;
};

class MpiComm : public Comm {
 public:
  MpiComm() {
    KILN_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    KILN_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    KILN_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    KILN_MPI_CHECK(MPI_Comm_size(comm_, &world_));
  }
  ~MpiComm() override {
    outstanding_.clear();
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Comm_free(&comm_);  // best effort at teardown: no abort from a destructor
  }

  std::shared_ptr<Work> all_reduce(torch::Tensor& t, ReduceOp op, bool async) override {
    check_cpu(t, "all_reduce");
    return reduce_to(t, op, /*root=*/-1, async);
  }

  std::shared_ptr<Work> reduce(torch::Tensor& t, ReduceOp op, int root, bool async) override {
    check_cpu(t, "reduce");
    TORCH_CHECK(root >= 0 && root < world_, "reduce: root ", root, " is not a rank of ", world_);
    return reduce_to(t, op, root, async);
  }

  std::shared_ptr<Work> reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op,
                                       bool async) override {
    check_cpu(in, "reduce_scatter");
    check_cpu(out, "reduce_scatter");
    check_scatter_gather_sizes("reduce_scatter", out, in, world_);
    TORCH_CHECK(out.numel() <= INT_MAX, "reduce_scatter: more than INT_MAX elements per rank");
    auto w = std::make_shared<MpiWork>("reduce_scatter");
    torch::Tensor src = staged(in, op);
    torch::Tensor dst = src.scalar_type() == out.scalar_type() ? out : torch::empty(out.sizes(), src.options());
    w->keep = {in, src, out, dst};
    w->reqs.emplace_back();
    KILN_MPI_CHECK(MPI_Ireduce_scatter_block(src.data_ptr(), dst.data_ptr(), static_cast<int>(out.numel()),
                                             reduce_type(src.scalar_type()), mpi_op(op), comm_, &w->reqs.back()));
    w->after = finisher(out, dst, op);
    return launched(w, async);
  }

  std::shared_ptr<Work> all_gather(const torch::Tensor& in, torch::Tensor& out, bool async) override {
    check_cpu(in, "all_gather");
    check_cpu(out, "all_gather");
    check_scatter_gather_sizes("all_gather", in, out, world_);
    const int64_t bytes = in.numel() * in.element_size();
    TORCH_CHECK(bytes <= INT_MAX, "all_gather: more than INT_MAX bytes per rank");
    auto w = std::make_shared<MpiWork>("all_gather");
    w->keep = {in, out};
    w->reqs.emplace_back();
    // Gathering moves bytes only, so any dtype (bf16 included) goes as MPI_BYTE.
    KILN_MPI_CHECK(MPI_Iallgather(in.data_ptr(), static_cast<int>(bytes), MPI_BYTE, out.data_ptr(),
                                  static_cast<int>(bytes), MPI_BYTE, comm_, &w->reqs.back()));
    return launched(w, async);
  }

  void broadcast(torch::Tensor& t, int root) override {
    check_cpu(t, "broadcast");
    TORCH_CHECK(root >= 0 && root < world_, "broadcast: root ", root, " is not a rank of ", world_);
    const int64_t bytes = t.numel() * t.element_size();
    char* p = static_cast<char*>(t.data_ptr());
    MpiWork w("broadcast");
    for (int64_t off = 0; off < bytes; off += INT_MAX) {
      const int cnt = static_cast<int>(std::min<int64_t>(INT_MAX, bytes - off));
      w.reqs.emplace_back();
      KILN_MPI_CHECK(MPI_Ibcast(p + off, cnt, MPI_BYTE, root, comm_, &w.reqs.back()));
    }
    w.wait();
  }

  void barrier() override {
    MpiWork w("barrier");
    w.reqs.emplace_back();
    KILN_MPI_CHECK(MPI_Ibarrier(comm_, &w.reqs.back()));
    w.wait();
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string name() const override { return "mpi"; }

  void progress() override {
    while (!outstanding_.empty()) {
      auto w = outstanding_.front().lock();
      if (w && !w->test()) return;  // MPI_Test drives progress of every pending collective
      outstanding_.pop_front();
    }
  }

 private:
  // In place: every rank's result (root < 0: MPI_Iallreduce) or only root's (MPI_Ireduce; the
  // others' tensors are left as they were). MPI counts are int: chunks of at most INT_MAX elements.
  std::shared_ptr<Work> reduce_to(torch::Tensor& t, ReduceOp op, int root, bool async) {
    auto w = std::make_shared<MpiWork>(root < 0 ? "all_reduce" : "reduce");
    const bool all = root < 0, me = rank_ == root;
    torch::Tensor buf = staged(t, op);
    w->keep = {t, buf};
    const int64_t n = buf.numel();
    char* base = static_cast<char*>(buf.data_ptr());
    for (int64_t off = 0; off < n; off += INT_MAX) {
      const int cnt = static_cast<int>(std::min<int64_t>(INT_MAX, n - off));
      char* p = base + off * buf.element_size();
      const MPI_Datatype type = reduce_type(buf.scalar_type());
      w->reqs.emplace_back();
      if (all)
        KILN_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p, cnt, type, mpi_op(op), comm_, &w->reqs.back()));
      else
        KILN_MPI_CHECK(MPI_Ireduce(me ? MPI_IN_PLACE : p, me ? p : nullptr, cnt, type, mpi_op(op), root, comm_,
                                   &w->reqs.back()));
    }
    if (all || me) w->after = finisher(t, buf, op);  // only the root holds a reduce's result
    return launched(w, async);
  }

  static void check_cpu(const torch::Tensor& t, const char* what) {
    TORCH_CHECK(t.defined(), what, ": undefined tensor");
    TORCH_CHECK(t.device().is_cpu(), what, ": MpiComm reduces CPU tensors; got one on ", t.device(),
                " (use the nccl backend for CUDA tensors)");
    TORCH_CHECK(t.is_contiguous(), what, ": the tensor must be contiguous");
  }

  // The buffer MPI reduces: the tensor itself, or an fp32 copy for dtypes MPI cannot reduce.
  static torch::Tensor staged(const torch::Tensor& t, ReduceOp op) {
    if (op == ReduceOp::Avg)
      TORCH_CHECK(t.is_floating_point(), "ReduceOp::Avg needs a floating-point tensor, got ", t.scalar_type());
    if (reduce_type(t.scalar_type()) != MPI_DATATYPE_NULL) return t;
    TORCH_CHECK(t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf,
                "MpiComm cannot reduce dtype ", t.scalar_type());
    return t.to(torch::kFloat);
  }

  // After the requests finish: Avg divides the sum by world; a staged copy is written back.
  std::function<void()> finisher(torch::Tensor dst, torch::Tensor buf, ReduceOp op) const {
    const int world = world_;
    return [dst, buf, op, world]() mutable {
      if (op == ReduceOp::Avg) buf.div_(world);
      if (!buf.is_same(dst)) dst.copy_(buf);
    };
  }

  std::shared_ptr<Work> launched(const std::shared_ptr<MpiWork>& w, bool async) {
    if (!async) {
      w->wait();
      return w;
    }
    outstanding_.push_back(w);
    return w;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int world_ = 1;
  std::deque<std::weak_ptr<MpiWork>> outstanding_;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm() { return std::make_unique<MpiComm>(); }

}  // namespace kiln::dist
