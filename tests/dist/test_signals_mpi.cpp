// Stop signals under `mpirun -np 2`: a SIGUSR1 or SIGTERM delivered to one rank makes
// stop_requested() true on both ranks at the same call (MAX all-reduce of the flag), and false
// before it. The second-signal exit is tested single-process in tests/unit/test_signals.cpp.
#include <gtest/gtest.h>

#include <signal.h>

#include "dist/dist.h"
#include "dist/signals.h"

namespace {

TEST(SignalsMpi, OneRankSignalledBothAgree) {
  const int r = kiln::dist::ctx().rank;
  kiln::dist::install_stop_handlers();
  for (int sig : {SIGUSR1, SIGTERM}) {
    const int target = sig == SIGUSR1 ? 1 : 0;  // signal rank 1, then rank 0
    kiln::dist::clear_stop_signal();
    EXPECT_FALSE(kiln::dist::stop_requested());
    if (r == target) ASSERT_EQ(raise(sig), 0);
    EXPECT_EQ(kiln::dist::stop_signal(), r == target ? sig : 0);  // the flag is local...
    EXPECT_TRUE(kiln::dist::stop_requested());                     // ...the decision is shared
    EXPECT_TRUE(kiln::dist::stop_requested());                     // and stays until cleared
    kiln::dist::clear_stop_signal();
    kiln::dist::barrier();
  }
  signal(SIGTERM, SIG_DFL);
  signal(SIGUSR1, SIG_DFL);
}

}  // namespace
