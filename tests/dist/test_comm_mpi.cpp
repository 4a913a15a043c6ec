// MpiComm under `mpirun -np 2` (tests/run_mpi.sh): every collective, sync and async, against
// values computed by hand from the rank, in fp32, fp64, int64 and bf16 (which MPI reduces via an
// fp32 copy). CPU only; the NCCL backend needs GPUs and is not run here.
#include <gtest/gtest.h>

#include "dist/comm.h"
#include "dist/dist.h"

namespace {

using kiln::dist::ReduceOp;

std::unique_ptr<kiln::dist::Comm> mpi() { return kiln::dist::make_comm("mpi", torch::kCPU, 60); }

// Rank r holds [r*10 + 0, r*10 + 1, ..., r*10 + n-1].
torch::Tensor ramp(int rank, int64_t n, torch::Dtype dt) {
  return (torch::arange(n, torch::kDouble) + 10.0 * rank).to(dt);
}

TEST(CommMpi, Identity) {
  auto c = mpi();
  EXPECT_EQ(c->name(), "mpi");
  EXPECT_EQ(c->world(), 2);
  EXPECT_EQ(c->rank(), kiln::dist::ctx().rank);
}

TEST(CommMpi, AllReduceSumAvgMax) {
  auto c = mpi();
  const int r = c->rank();
  for (auto dt : {torch::kFloat, torch::kDouble, torch::kBFloat16}) {
    auto s = ramp(r, 7, dt);
    c->all_reduce(s, ReduceOp::Sum);
    EXPECT_TRUE(torch::equal(s, (2 * torch::arange(7, torch::kDouble) + 10).to(dt))) << dt;
    auto a = ramp(r, 7, dt);
    c->all_reduce(a, ReduceOp::Avg);
    EXPECT_TRUE(torch::equal(a, (torch::arange(7, torch::kDouble) + 5).to(dt))) << dt;
    auto m = ramp(r, 7, dt);
    c->all_reduce(m, ReduceOp::Max);
    EXPECT_TRUE(torch::equal(m, ramp(1, 7, dt))) << dt;
  }
  auto i = ramp(r, 5, torch::kLong);
  c->all_reduce(i, ReduceOp::Sum);
  EXPECT_TRUE(torch::equal(i, 2 * torch::arange(5, torch::kLong) + 10));
}

// Issue 14: reduce to one root (ZeRO-1's gradient path): the root gets the reduction, the other
// rank's tensor is untouched; sync and async, fp32 / fp64 / bf16, both roots.
TEST(CommMpi, ReduceToRoot) {
  auto c = mpi();
  const int r = c->rank();
  for (int root : {0, 1})
    for (auto dt : {torch::kFloat, torch::kDouble, torch::kBFloat16})
      for (bool async : {false, true}) {
        auto t = ramp(r, 9, dt);
        auto w = c->reduce(t, ReduceOp::Avg, root, async);
        w->wait();
        auto want = r == root ? (torch::arange(9, torch::kDouble) + 5).to(dt) : ramp(r, 9, dt);
        EXPECT_TRUE(torch::equal(t, want)) << "root " << root << " " << dt << " async " << async;
        auto s = ramp(r, 4, dt);
        c->reduce(s, ReduceOp::Sum, root);
        if (r == root) EXPECT_TRUE(torch::equal(s, (2 * torch::arange(4, torch::kDouble) + 10).to(dt)));
      }
}

TEST(CommMpi, AvgIsSumThenDivide) {
  // Avg must round like a single process averaging the same numbers: (a + b) / 2 in fp32.
  auto c = mpi();
  const float a = 0.1f, b = 0.7f;
  auto t = torch::full({3}, c->rank() == 0 ? a : b);
  c->all_reduce(t, ReduceOp::Avg);
  EXPECT_EQ(t[2].item<float>(), (a + b) / 2.0f);
}

TEST(CommMpi, AsyncAllReduceOverlapsAndWaits) {
  auto c = mpi();
  const int r = c->rank();
  std::vector<torch::Tensor> ts;
  std::vector<std::shared_ptr<kiln::dist::Work>> ws;
  for (int k = 0; k < 4; ++k) {
    ts.push_back(torch::full({1000}, float(r + k)));
    ws.push_back(c->all_reduce(ts.back(), ReduceOp::Avg, /*async=*/true));
    c->progress();
  }
  for (int k = 3; k >= 0; --k) ws[k]->wait();  // any order of waiting is fine
  ws[0]->wait();                                // twice is a no-op
  for (int k = 0; k < 4; ++k) EXPECT_TRUE(torch::equal(ts[k], torch::full({1000}, k + 0.5f))) << k;
}

TEST(CommMpi, ReduceScatter) {
  auto c = mpi();
  const int r = c->rank();
  auto in = ramp(r, 6, torch::kFloat);  // rank0 [0..5], rank1 [10..15]
  auto out = torch::empty({3});
  c->reduce_scatter(in, out, ReduceOp::Sum);
  auto want = (2 * torch::arange(6, torch::kFloat) + 10).narrow(0, 3 * r, 3);
  EXPECT_TRUE(torch::equal(out, want));
  auto outb = torch::empty({3}, torch::kBFloat16);
  auto w = c->reduce_scatter(in.to(torch::kBFloat16), outb, ReduceOp::Avg, /*async=*/true);
  w->wait();
  EXPECT_TRUE(torch::equal(outb, (want / 2).to(torch::kBFloat16)));
  auto bad = torch::empty({4});
  EXPECT_THROW(c->reduce_scatter(in, bad, ReduceOp::Sum), c10::Error);
}

TEST(CommMpi, AllGather) {
  auto c = mpi();
  const int r = c->rank();
  for (auto dt : {torch::kFloat, torch::kBFloat16, torch::kLong}) {
    auto in = ramp(r, 4, dt);
    auto out = torch::empty({8}, dt);
    c->all_gather(in, out, /*async=*/true)->wait();
    EXPECT_TRUE(torch::equal(out, torch::cat({ramp(0, 4, dt), ramp(1, 4, dt)}))) << dt;
  }
}

TEST(CommMpi, BroadcastAndBarrier) {
  auto c = mpi();
  const int r = c->rank();
  auto t = ramp(r, 5, torch::kFloat);
  c->broadcast(t, 1);
  EXPECT_TRUE(torch::equal(t, ramp(1, 5, torch::kFloat)));
  auto b = torch::full({2, 3}, r == 0 ? 7.0 : 0.0, torch::kBFloat16);
  c->broadcast(b, 0);
  EXPECT_TRUE(torch::equal(b, torch::full({2, 3}, 7.0, torch::kBFloat16)));
  c->barrier();
}

TEST(CommMpi, RejectsWrongTensors) {
  auto c = mpi();
  auto nc = torch::zeros({4, 4}).t();
  EXPECT_THROW(c->all_reduce(nc, ReduceOp::Sum), c10::Error);  // not contiguous
  auto it = torch::zeros({4}, torch::kLong);
  EXPECT_THROW(c->all_reduce(it, ReduceOp::Avg), c10::Error);  // Avg of integers
}

}  // namespace
