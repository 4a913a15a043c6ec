// Stop signals in one process: the handler only sets the flag (the process keeps running), the
// flag is reported and cleared, a second signal exits at once with 128+signal (gtest death tests
// run a child for that), and one inside the duplicate window is ignored. The agreement across
// ranks is tests/dist/test_signals_mpi.cpp.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "dist/dist.h"
#include "test_util.h"
#include "dist/signals.h"

namespace {


TEST(Signals, FirstSignalOnlySetsTheFlag) {
  kiln::test::init_world();
  kiln::dist::install_stop_handlers();
  kiln::dist::clear_stop_signal();
  EXPECT_FALSE(kiln::dist::stop_requested());
  ASSERT_EQ(raise(SIGUSR1), 0);  // the process survives
  EXPECT_EQ(kiln::dist::stop_signal(), SIGUSR1);
  EXPECT_TRUE(kiln::dist::stop_requested());
  kiln::dist::clear_stop_signal();
  EXPECT_FALSE(kiln::dist::stop_requested());
  signal(SIGTERM, SIG_DFL);
  signal(SIGUSR1, SIG_DFL);
}

TEST(SignalsDeathTest, SecondSignalExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto twice = [](int first, int second) {
    kiln::dist::install_stop_handlers(/*duplicate_window_s=*/0.0);
    kiln::dist::clear_stop_signal();
    raise(first);
    raise(second);
    std::_Exit(0);  // not reached
  };
  EXPECT_EXIT(twice(SIGTERM, SIGTERM), ::testing::ExitedWithCode(128 + SIGTERM), "second stop signal");
  EXPECT_EXIT(twice(SIGUSR1, SIGTERM), ::testing::ExitedWithCode(128 + SIGTERM), "second stop signal");
  EXPECT_EXIT(twice(SIGTERM, SIGUSR1), ::testing::ExitedWithCode(128 + SIGUSR1), "second stop signal");
}

TEST(SignalsDeathTest, DuplicateWithinWindowIsIgnoredLaterOneExits) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto run = [](double sleep_s) {
    kiln::dist::install_stop_handlers(/*duplicate_window_s=*/0.5);
    kiln::dist::clear_stop_signal();
    raise(SIGTERM);
    if (sleep_s > 0) usleep(static_cast<useconds_t>(sleep_s * 1e6));
    raise(SIGUSR1);  // within 0.5 s: the same request twice; after: a second request
    fprintf(stderr, "survived with signal %d\n", kiln::dist::stop_signal());
    std::_Exit(3);
  };
  EXPECT_EXIT(run(0.0), ::testing::ExitedWithCode(3), "survived with signal 15");
  EXPECT_EXIT(run(0.7), ::testing::ExitedWithCode(128 + SIGUSR1), "second stop signal");
}

}  // namespace
