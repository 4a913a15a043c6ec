// Internal to src/dist: bounded waits for MPI collectives, the MPI counterpart of the NCCL
// watchdog. A dead node or a cut network leaves TCP connections open, so a blocking MPI wait
// would hang until the scheduler's time limit. Every wait kiln makes on an MPI collective polls
// instead; past dist.timeout_s it names the ranks that stopped answering and aborts the job.
// Who stopped answering comes from heartbeats: a rank that has waited a while sends a tiny
// message, tagged with the collective's number, to every peer on a private communicator, so
// the ranks that reached the same collective are known to be alive and the rest are named.
#pragma once
#include <mpi.h>

#include <cstdint>

namespace kiln::dist {

// Collective, once in dist::init (after ctx() is filled in): the heartbeat communicator.
void watchdog_init();
// Before MPI_Finalize: cancels the posted heartbeat receive.
void watchdog_finalize();
// dist.timeout_s (make_comm sets it; 600 s until then). Must be > 0.
void set_collective_timeout(double seconds);
// The number of the next collective. Every collective kiln launches takes one, in the same order
// on every rank (collectives are issued in the same order everywhere), so numbers match.
uint64_t next_collective();
// Waits for the n requests of collective `seq`. Past the timeout: prints on this rank which
// ranks (and hosts) were not heard from during the collective, then MPI_Aborts every rank.
void watched_wait(int n, MPI_Request* reqs, uint64_t seq, const char* what);

}  // namespace kiln::dist
