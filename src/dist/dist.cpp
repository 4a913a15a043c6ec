// MPI bootstrap and host-side collectives; see dist.h. MPI_ERRORS_RETURN is set at init so that
// every MPI call returns a code that KILN_MPI_CHECK turns into a message plus MPI_Abort. The
// collectives are non-blocking ones waited for by the watchdog (dist.timeout_s), never a bare
// blocking call that a dead node would hang.
#include "dist/dist.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "dist/check.h"
#include "dist/hosts.h"
#include "dist/watchdog.h"

namespace kiln::dist {
namespace {
Context g_ctx;
std::vector<std::string> g_hosts(1);
bool g_finalized = false;
}  // namespace

const char* mpi_error_string(int code) {
  static thread_local char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) snprintf(buf, sizeof(buf), "MPI error %d", code);
  return buf;
}

void check_failed(const char* lib, const char* expr, const char* why, const char* file, int line) {
  fprintf(stderr, "[rank %d] %s error: %s failed: %s at %s:%d\n", g_ctx.rank, lib, expr, why, file, line);
  fflush(stderr);
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited && g_ctx.world > 1) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

const Context& init(int* argc, char*** argv) {
  if (g_ctx.initialized) return g_ctx;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    // FUNNELED: only the main thread calls MPI. Collectives on other threads (GradSync) go
    // through a communicator object that serialises them.
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      fprintf(stderr, "error: [dist] MPI_Init_thread failed; is OpenMPI installed (launch/setup.sh)?\n");
      std::_Exit(1);
    }
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  KILN_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_ctx.rank));
  KILN_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_ctx.world));
  MPI_Comm local;
  KILN_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_ctx.rank, MPI_INFO_NULL, &local));
  KILN_MPI_CHECK(MPI_Comm_rank(local, &g_ctx.local_rank));
  KILN_MPI_CHECK(MPI_Comm_size(local, &g_ctx.local_world));
  KILN_MPI_CHECK(MPI_Comm_free(&local));
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  g_ctx.host = host;
  g_hosts.assign(static_cast<size_t>(g_ctx.world), g_ctx.host);
  if (g_ctx.world > 1) {  // every rank's hostname, fixed-size records (truncated at 255 bytes)
    std::vector<char> all(sizeof(host) * static_cast<size_t>(g_ctx.world));
    KILN_MPI_CHECK(MPI_Allgather(host, sizeof(host), MPI_CHAR, all.data(), sizeof(host), MPI_CHAR, MPI_COMM_WORLD));
    for (int r = 0; r < g_ctx.world; ++r) g_hosts[static_cast<size_t>(r)] = &all[sizeof(host) * static_cast<size_t>(r)];
  }
  g_ctx.initialized = true;
  log::set_rank(g_ctx.rank, g_ctx.world);
  watchdog_init();
  return g_ctx;
}

const Context& ctx() { return g_ctx; }

const std::vector<std::string>& hosts() { return g_hosts; }

void finalize() {
  if (!g_ctx.initialized || g_finalized) return;
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) {
    watchdog_finalize();
    MPI_Finalize();
  }
  g_finalized = true;
}

void abort_all(const std::string& message, int code) {
  log::error("%s", message.c_str());
  if (g_ctx.initialized && g_ctx.world > 1) {
    MPI_Abort(MPI_COMM_WORLD, code);
  }
  // A world of one: finalise quietly so OpenMPI prints no "exited without finalize" banner.
  finalize();
  std::exit(code);
}

namespace {
// Waits for one collective request under the watchdog.
void wait_one(MPI_Request req, uint64_t seq, const char* what) { watched_wait(1, &req, seq, what); }
}  // namespace

void barrier() {
  if (g_ctx.world == 1) return;
  const uint64_t seq = next_collective();
  MPI_Request req;
  KILN_MPI_CHECK(MPI_Ibarrier(MPI_COMM_WORLD, &req));
  wait_one(req, seq, "barrier");
}

int64_t all_reduce_max(int64_t v) {
  if (g_ctx.world == 1) return v;
  int64_t out = 0;
  const uint64_t seq = next_collective();
  MPI_Request req;
  KILN_MPI_CHECK(MPI_Iallreduce(&v, &out, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD, &req));
  wait_one(req, seq, "all_reduce_max");
  return out;
}

int64_t all_reduce_sum(int64_t v) {
  if (g_ctx.world == 1) return v;
  int64_t out = 0;
  const uint64_t seq = next_collective();
  MPI_Request req;
  KILN_MPI_CHECK(MPI_Iallreduce(&v, &out, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD, &req));
  wait_one(req, seq, "all_reduce_sum");
  return out;
}

double all_reduce_sum(double v) {
  if (g_ctx.world == 1) return v;
  double out = 0;
  const uint64_t seq = next_collective();
  MPI_Request req;
  KILN_MPI_CHECK(MPI_Iallreduce(&v, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req));
  wait_one(req, seq, "all_reduce_sum");
  return out;
}

std::vector<int64_t> all_gather(int64_t v) {
  std::vector<int64_t> out(static_cast<size_t>(g_ctx.world), v);
  if (g_ctx.world == 1) return out;
  const uint64_t seq = next_collective();
  MPI_Request req;
  KILN_MPI_CHECK(MPI_Iallgather(&v, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, MPI_COMM_WORLD, &req));
  wait_one(req, seq, "all_gather");
  return out;
}

std::string broadcast_string(const std::string& s) { return broadcast_string_from(s, 0); }

std::string broadcast_string_from(const std::string& s, int root) {
  if (g_ctx.world == 1) return s;
  int64_t n = static_cast<int64_t>(s.size());
  MPI_Request req;
  uint64_t seq = next_collective();
  KILN_MPI_CHECK(MPI_Ibcast(&n, 1, MPI_INT64_T, root, MPI_COMM_WORLD, &req));
  wait_one(req, seq, "broadcast");
  std::vector<char> buf(s.begin(), s.end());
  buf.resize(static_cast<size_t>(n));
  seq = next_collective();
  KILN_MPI_CHECK(MPI_Ibcast(buf.data(), static_cast<int>(n), MPI_CHAR, root, MPI_COMM_WORLD, &req));
  wait_one(req, seq, "broadcast");
  return std::string(buf.begin(), buf.end());
}

std::string rank0_then_broadcast(const std::function<std::string()>& fn) {
  std::string value, err;
  if (g_ctx.rank == 0) {
    try {
      value = fn();
    } catch (const Error& e) {
      err = e.what();
    }
  }
  err = broadcast_string(err);
  if (!err.empty()) throw Error(err);
  return broadcast_string(value);
}

int guarded_main(int (*body)(int, char**), int argc, char** argv) {
  try {
    int rc = body(argc, argv);
    finalize();
    return rc;
  } catch (const Error& e) {
    abort_all(e.what(), 1);
  } catch (const std::exception& e) {
    abort_all(std::string("internal error: ") + e.what(), 1);
  }
}

}  // namespace kiln::dist
