// Tests that need two ranks: run as `mpirun -np 2 kiln_dist_tests` (tests/run_mpi.sh). Checks
// rank/world/local-rank bootstrap and the host-side collectives. Only rank 0 prints gtest output;
// a failure on any rank makes the whole run fail (results are all-reduced at the end).
#include <gtest/gtest.h>

#include "dist/dist.h"

namespace {
const kiln::dist::Context* g = nullptr;
}

TEST(Dist, WorldOfTwo) {
  ASSERT_EQ(g->world, 2) << "run under mpirun -np 2";
  EXPECT_TRUE(g->rank == 0 || g->rank == 1);
  EXPECT_EQ(g->local_world, 2);  // both ranks on this machine
  EXPECT_EQ(g->local_rank, g->rank);
}

TEST(Dist, Collectives) {
  EXPECT_EQ(kiln::dist::all_reduce_max(int64_t{g->rank * 10}), 10);
  EXPECT_EQ(kiln::dist::all_reduce_sum(int64_t{g->rank + 1}), 3);
  EXPECT_DOUBLE_EQ(kiln::dist::all_reduce_sum(0.5 * (g->rank + 1)), 1.5);
  std::string s = kiln::dist::broadcast_string(g->rank == 0 ? "from rank 0" : "other");
  EXPECT_EQ(s, "from rank 0");
  kiln::dist::barrier();
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  g = &kiln::dist::init(&argc, &argv);
  if (g->rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  int64_t any_failed = kiln::dist::all_reduce_max(int64_t{rc != 0});
  kiln::dist::finalize();
  return any_failed ? 1 : 0;
}
