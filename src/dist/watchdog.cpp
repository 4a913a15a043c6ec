// The MPI watchdog; see watchdog.h. Heartbeats cost nothing while collectives finish quickly:
// a rank sends them only after it has waited beat_s in one collective. Polling spins like
// MPI_Waitall for the first milliseconds, then yields the core between polls (CPU ranks often
// share cores, and a rank waiting for a slow peer should not slow it further).
#include "dist/watchdog.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

#include "core/log.h"
#include "dist/check.h"
#include "dist/dist.h"
#include "dist/hosts.h"

namespace kiln::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kNever = 0;  // collective numbers start at 1

struct Beat {  // an outgoing heartbeat; its buffer must live until MPI is done with it
  MPI_Request req = MPI_REQUEST_NULL;
  uint64_t seq = 0;
};

MPI_Comm g_hb = MPI_COMM_NULL;
MPI_Request g_hb_recv = MPI_REQUEST_NULL;
uint64_t g_hb_in = 0;
std::vector<uint64_t> g_heard;  // per rank: the highest collective it was heard waiting in
std::deque<Beat> g_out;
uint64_t g_seq = 0;
double g_timeout_s = 600.0;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void post_receive() { KILN_MPI_CHECK(MPI_Irecv(&g_hb_in, 1, MPI_UINT64_T, MPI_ANY_SOURCE, 0, g_hb, &g_hb_recv)); }

void drain_heartbeats() {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    KILN_MPI_CHECK(MPI_Test(&g_hb_recv, &flag, &st));
    if (!flag) break;
    uint64_t& h = g_heard[static_cast<size_t>(st.MPI_SOURCE)];
    h = std::max(h, g_hb_in);
    post_receive();
  }
  while (!g_out.empty()) {  // sends to a peer that is gone stay pending; that is fine
    int flag = 0;
    KILN_MPI_CHECK(MPI_Test(&g_out.front().req, &flag, MPI_STATUS_IGNORE));
    if (!flag) break;
    g_out.pop_front();
  }
}

void send_heartbeats(uint64_t seq) {
  const Context& c = ctx();
  for (int r = 0; r < c.world; ++r) {
    if (r == c.rank) continue;
    g_out.push_back(Beat{MPI_REQUEST_NULL, seq});
    KILN_MPI_CHECK(MPI_Isend(&g_out.back().seq, 1, MPI_UINT64_T, r, 0, g_hb, &g_out.back().req));
  }
}

[[noreturn]] void timed_out(uint64_t seq, const char* what, double waited) {
  const Context& c = ctx();
  std::string who;
  for (int r = 0; r < c.world; ++r) {
    const uint64_t heard = g_heard[static_cast<size_t>(r)];
    if (r == c.rank || heard >= seq) continue;
    who += (who.empty() ? "rank " : ", rank ") + std::to_string(r) + " (host " + hosts()[static_cast<size_t>(r)] +
           (heard == kNever ? ", never heard from" : ", last heard in collective #" + std::to_string(heard)) + ")";
  }
  const std::string why = who.empty() ? "every rank answered, but MPI did not complete the collective"
                                      : who + " stopped answering";
  char head[256];
  snprintf(head, sizeof(head), "[dist] %s (collective #%llu) did not complete within dist.timeout_s = %g s (waited %.1f s) on host %s: ",
           what, static_cast<unsigned long long>(seq), g_timeout_s, waited, c.host.c_str());
  log::error("%s%s. A node died or the network between nodes is down: aborting the job; once the nodes are "
             "back, continue with --resume <checkpoint.dir>",
             head, why.c_str());
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

}  // namespace

void watchdog_init() {
  const Context& c = ctx();
  g_heard.assign(static_cast<size_t>(c.world), kNever);
  if (c.world == 1) return;
  KILN_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &g_hb));
  KILN_MPI_CHECK(MPI_Comm_set_errhandler(g_hb, MPI_ERRORS_RETURN));
  post_receive();
}

void watchdog_finalize() {
  if (g_hb == MPI_COMM_NULL) return;
  if (g_hb_recv != MPI_REQUEST_NULL) {
    MPI_Cancel(&g_hb_recv);
    MPI_Request_free(&g_hb_recv);
  }
  for (Beat& b : g_out)
    if (b.req != MPI_REQUEST_NULL) MPI_Request_free(&b.req);
  g_out.clear();
  MPI_Comm_free(&g_hb);
}

void set_collective_timeout(double seconds) { g_timeout_s = seconds; }

uint64_t next_collective() { return ++g_seq; }

void watched_wait(int n, MPI_Request* reqs, uint64_t seq, const char* what) {
  int done = 0;
  KILN_MPI_CHECK(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE));
  if (done) return;
  const auto t0 = Clock::now();
  // Heartbeats every tenth of the timeout (between 50 ms and 1 s): alive peers are heard
  // several times before the timeout, and a normal slow collective sends few.
  const double beat_s = std::clamp(g_timeout_s / 10, 0.05, 1.0);
  double next_beat = beat_s;
  for (;;) {
    KILN_MPI_CHECK(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE));
    if (done) return;
    const double waited = since(t0);
    if (waited < 0.01) continue;  // spin at first, as MPI_Waitall would
    if (g_hb != MPI_COMM_NULL) {
      drain_heartbeats();
      if (waited >= next_beat) {
        send_heartbeats(seq);
        next_beat = waited + beat_s;
      }
    }
    if (waited > g_timeout_s) timed_out(seq, what, waited);
    sched_yield();
  }
}

}  // namespace kiln::dist
