// dist::Comm in one process (OpenMPI singleton, world of 1): make_comm picks and validates the
// backend, MpiComm collectives are identities on one rank, and asking for a GPU on this machine
// (no GPU in CI) gives the kiln::Error with a hint instead of a crash. 2-rank cases: tests/dist/.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/comm.h"
#include "dist/dist.h"
#include "test_util.h"

namespace {


std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kiln::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Comm, AutoOnCpuIsMpiAndIdentityOnOneRank) {
  kiln::test::init_world();
  auto c = kiln::dist::make_comm("auto", torch::kCPU, 10);
  EXPECT_EQ(c->name(), "mpi");
  EXPECT_EQ(c->world(), 1);
  auto t = torch::tensor({1.5f, -2.0f});
  c->all_reduce(t, kiln::dist::ReduceOp::Avg, true)->wait();
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.5f, -2.0f})));
  auto out = torch::empty({2});
  c->all_gather(t, out);
  EXPECT_TRUE(torch::equal(out, t));
  c->reduce_scatter(t, out, kiln::dist::ReduceOp::Sum);
  EXPECT_TRUE(torch::equal(out, t));
  c->barrier();
}

TEST(Comm, BadBackendSettingsAreUserErrors) {
  kiln::test::init_world();
  EXPECT_NE(error_of([] { kiln::dist::make_comm("gloo", torch::kCPU, 10); }).find("use auto, nccl or mpi"),
            std::string::npos);
  EXPECT_NE(error_of([] { kiln::dist::make_comm("nccl", torch::kCPU, 10); }).find("needs a CUDA device"),
            std::string::npos);
  EXPECT_NE(error_of([] { kiln::dist::make_comm("mpi", torch::Device("cuda:0"), 10); }).find("CPU tensors only"),
            std::string::npos);
  EXPECT_NE(error_of([] { kiln::dist::make_comm("auto", torch::kCPU, 0); }).find("timeout_s"), std::string::npos);
}

TEST(Comm, TooFewGpusIsAClearError) {
  kiln::test::init_world();
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a GPU";
  std::string e = error_of([] { kiln::dist::make_comm("auto", torch::Device("cuda:0"), 10); });
  EXPECT_NE(e.find("local rank 0 of 1"), std::string::npos) << e;
  EXPECT_NE(e.find("0 GPU(s) are visible"), std::string::npos) << e;
  EXPECT_NE(e.find("hint:"), std::string::npos) << e;
}

}  // namespace
