// KILN_MPI_CHECK / KILN_CUDA_CHECK / KILN_NCCL_CHECK: every MPI, CUDA and NCCL call goes through
// one of these. On failure they print the expression, the library's error text,
// file:line and the rank, then abort the whole world (never a bare exit that leaves peers hanging).
#pragma once

namespace kiln::dist {
// Prints "[rank R] <lib> error: <expr> failed: <why> at file:line" and MPI_Aborts every rank.
[[noreturn]] void check_failed(const char* lib, const char* expr, const char* why, const char* file,
                               int line);
// The MPI error string for an MPI return code.
const char* mpi_error_string(int code);
}  // namespace kiln::dist

#define KILN_MPI_CHECK(expr)                                                                \
  do {                                                                                      \
    int kiln_rc_ = (expr);                                                                  \
    if (kiln_rc_ != 0 /* MPI_SUCCESS */)                                                    \
      ::kiln::dist::check_failed("MPI", #expr, ::kiln::dist::mpi_error_string(kiln_rc_),    \
                                 __FILE__, __LINE__);                                       \
  } while (0)

#define KILN_CUDA_CHECK(expr)                                                               \
  do {                                                                                      \
    cudaError_t kiln_rc_ = (expr);                                                          \
    if (kiln_rc_ != cudaSuccess)                                                            \
      ::kiln::dist::check_failed("CUDA", #expr, cudaGetErrorString(kiln_rc_), __FILE__,     \
                                 __LINE__);                                                 \
  } while (0)

#define KILN_NCCL_CHECK(expr)                                                               \
  do {                                                                                      \
    ncclResult_t kiln_rc_ = (expr);                                                         \
    if (kiln_rc_ != ncclSuccess)                                                            \
      ::kiln::dist::check_failed("NCCL", #expr, ncclGetErrorString(kiln_rc_), __FILE__,     \
                                 __LINE__);                                                 \
  } while (0)
