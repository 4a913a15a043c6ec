// The sandbox for untrusted Python (HumanEval completions): a child process in fresh pid, network,
// mount, IPC and UTS namespaces (where the kernel allows) that sees only a read-only /usr and /etc
// and a size-capped private /tmp, runs as a uid of its own, with rlimits, a cleared environment and
// a wall-clock timeout that kills everything it started. A run passes only when the program ran to
// its end: a per-run secret the program never sees comes back from the harness after its last
// statement returned. See Note [Sandbox layers] and Note [Pass verdict] in sandbox.cpp.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kiln::eval {

// Limits; the defaults are nanochat's execute_code (5 s, 256 MB) where it has one.
struct SandboxLimits {
  double timeout_s = 5.0;               // wall clock; then the whole process tree is SIGKILLed
  int64_t cpu_seconds = 6;              // RLIMIT_CPU
  int64_t memory_bytes = 256LL << 20;   // RLIMIT_AS (address space)
  int64_t file_bytes = 16LL << 20;      // RLIMIT_FSIZE (largest single file)
  int64_t disk_bytes = 64LL << 20;      // all files together: /tmp and /dev/shm are one tmpfs of this size
  int64_t processes = 32;               // RLIMIT_NPROC of the run's own uid
  int64_t output_bytes = 16 << 10;      // stdout+stderr kept (the rest is read and dropped)
  std::string python;                   // interpreter; "" = /usr/bin/python3, else python3 on PATH
  std::string prelude;                  // Python run in the interpreter before the program (HumanEval:
                                        // nanochat's guard); not part of the program's text
};

enum class SandboxStatus {
  Passed,    // the program ran to its end (its last statement returned) and the interpreter exited 0
  Failed,    // an exception, a failed assert, a non-zero exit, or an exit before the end (sys.exit(0))
  Killed,    // ended by a signal (CPU limit, out of memory in the interpreter, ...)
  TimedOut,  // still running at the wall-clock limit: killed with its descendants
  Error,     // the sandbox itself could not be set up: an infrastructure failure, not the program's
};

struct SandboxResult {
  SandboxStatus status = SandboxStatus::Error;
  int exit_code = -1;   // when it exited
  int signal = 0;       // when a signal ended it
  double wall_s = 0;
  int attempts = 1;     // run_sandbox_batch: runs needed (an infrastructure error is retried)
  std::string output;   // stdout and stderr interleaved, truncated to output_bytes
  std::string isolation;  // which layers were in force (see sandbox_isolation())
  bool passed() const { return status == SandboxStatus::Passed; }
};

// Sandbox uids: each run gets one of its own from this range (so RLIMIT_NPROC and file ownership
// are never shared between runs); never a uid of a real account.
constexpr uint32_t kSandboxUidBase = 1u << 20, kSandboxUidCount = 1u << 24;

// Runs `program` with `python -I -B` in the sandbox. Thread-safe: several may run at once.
SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits = {});

// Runs many programs, `jobs` at once. An infrastructure error (SandboxStatus::Error) is never a
// verdict on the program: it is retried (up to `attempts` runs in all) and, if it persists, a
// kiln::Error is thrown, so that no score is made of it. `run` is the sandbox (a parameter so that
// the retry policy can be tested with injected failures).
using SandboxRun = std::function<SandboxResult(const std::string&, const SandboxLimits&)>;
std::vector<SandboxResult> run_sandbox_batch(const std::vector<std::string>& programs, const SandboxLimits& limits,
                                             int jobs, int attempts = 3, const SandboxRun& run = run_python_sandboxed);

// nanochat's guard (its execution.py GUARD) as a prelude: HumanEval runs with it, as nanochat's do.
std::string nanochat_guard(int64_t memory_bytes);

// The layers this process can put in place, probed once: e.g. "pid+net+mount+ipc+uts namespaces,
// ..." as root on Linux, "process group only (...)" elsewhere.
const std::string& sandbox_isolation();

const char* to_string(SandboxStatus s);

}  // namespace kiln::eval
