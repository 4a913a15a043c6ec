// dist::init without mpirun: OpenMPI's singleton init gives a world of one with rank 0, and the
// host-side collectives are identities. CPU only; the 2-rank case is tests/dist/.
#include <gtest/gtest.h>

#include "dist/dist.h"
#include "test_util.h"

void kiln::test::init_world() {
  int argc = 1;
  char arg0[] = "kiln_tests";
  char* argvv[] = {arg0, nullptr};
  char** argv = argvv;
  kiln::dist::init(&argc, &argv);
}

TEST(DistSingleton, InitGivesWorldOfOne) {
  int argc = 1;
  char arg0[] = "kiln_tests";
  char* argvv[] = {arg0, nullptr};
  char** argv = argvv;
  const auto& c = kiln::dist::init(&argc, &argv);
  EXPECT_TRUE(c.initialized);
  EXPECT_EQ(c.rank, 0);
  EXPECT_EQ(c.world, 1);
  EXPECT_EQ(c.local_rank, 0);
  EXPECT_EQ(c.local_world, 1);
  EXPECT_FALSE(c.host.empty());
  EXPECT_EQ(&kiln::dist::init(&argc, &argv), &c);  // idempotent
  EXPECT_EQ(kiln::dist::all_reduce_max(int64_t{5}), 5);
  EXPECT_EQ(kiln::dist::broadcast_string("abc"), "abc");
  kiln::dist::barrier();
}
