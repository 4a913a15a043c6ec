// The process-wide distributed context: MPI bootstrap that also works without mpirun (a
// singleton world of 1), rank / world / local rank (MPI_Comm_split_type over shared memory, so
// mpirun and Slurm's srun agree), and the abort path that takes every rank down instead of hanging.
// Only dist/ calls MPI; the rest of kiln sees this small struct.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln::dist {

struct Context {
  int rank = 0;
  int world = 1;
  int local_rank = 0;   // rank among the processes on this node
  int local_world = 1;  // processes on this node
  std::string host;
  bool initialized = false;
};

// Initialise MPI (idempotent) and the rank-aware logger. Works under mpirun, srun, or alone.
const Context& init(int* argc, char*** argv);
// The context; a world of 1 when init has not been called.
const Context& ctx();
// Finalise MPI (idempotent); call at the end of a successful run.
void finalize();
// Print the message on this rank and abort every rank with `code` (MPI_Abort when world > 1).
[[noreturn]] void abort_all(const std::string& message, int code = 1);

// Small host-side collectives over MPI_COMM_WORLD, for control decisions (not tensors).
void barrier();
int64_t all_reduce_max(int64_t v);
int64_t all_reduce_sum(int64_t v);
double all_reduce_sum(double v);
// Every rank's value, indexed by rank.
std::vector<int64_t> all_gather(int64_t v);
// Rank 0's string on every rank.
std::string broadcast_string(const std::string& s);
// Rank 0 runs `fn` (a look at the file system, say) and every rank gets its result. When fn
// throws kiln::Error on rank 0, every rank throws that message, so all fail alike instead of
// waiting on rank 0. Collective: every rank calls it.
std::string rank0_then_broadcast(const std::function<std::string()>& fn);

// Run a binary's body: catches kiln::Error (and std::exception), prints it on the failing rank,
// and aborts the world so that no peer is left waiting in a collective. Returns the exit code.
int guarded_main(int (*body)(int, char**), int argc, char** argv);

}  // namespace kiln::dist
