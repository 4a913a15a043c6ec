// Stop signals: an async-signal-safe handler (it only stores to a sig_atomic_t, or _exit()s on
// the second signal) and the step-boundary agreement over MPI. Marian's handler, plus the
// agreement across ranks that Marian lacks.
#include "dist/signals.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "dist/dist.h"

namespace kiln::dist {
namespace {

// Note [Duplicate signals]
// One stop request often reaches a rank twice within milliseconds: at preemption Slurm sends
// SIGTERM to every task *and* to srun/the batch shell, which forward it again; a user's `kill`
// of mpirun is forwarded while the batch script traps and forwards too. Counting that as the
// "second signal" would turn every graceful stop into an immediate exit with no checkpoint. So
// a second signal within duplicate_window_s (default 1 s) of the first is ignored; a deliberate
// second request (Ctrl-C again, scancel again) comes later and exits at once with 128+signal.
volatile sig_atomic_t g_signal = 0;
long g_window_ns = 1000000000L;  // set before the handler is installed; read-only afterwards
timespec g_first{};              // written only by the handler, which blocks both signals

long elapsed_ns(const timespec& a, const timespec& b) {
  return (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
}

// Async-signal-safe: stores, clock_gettime, write and _exit only (all on POSIX's safe list).
extern "C" void on_stop_signal(int sig) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (g_signal != 0) {
    if (elapsed_ns(g_first, now) < g_window_ns) return;  // See Note [Duplicate signals]
    static const char msg[] = "[dist] second stop signal: exiting now without a checkpoint\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(128 + sig);
  }
  g_first = now;
  g_signal = sig;
}

}  // namespace

void install_stop_handlers(double duplicate_window_s) {
  g_window_ns = static_cast<long>(duplicate_window_s * 1e9);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGTERM);  // the handler never interrupts itself
  sigaddset(&sa.sa_mask, SIGUSR1);
  sa.sa_flags = SA_RESTART;  // a signal must not make a blocking read/MPI call fail with EINTR
  for (int sig : {SIGTERM, SIGUSR1})
    if (sigaction(sig, &sa, nullptr) != 0) abort_all("[dist] sigaction failed for signal " + std::to_string(sig));
}

bool stop_requested() { return all_reduce_max(int64_t{g_signal != 0}) != 0; }

int stop_signal() { return g_signal; }

void clear_stop_signal() { g_signal = 0; }

}  // namespace kiln::dist
