// The sandbox for untrusted Python (HumanEval completions): a child process in fresh pid, network
// and mount namespaces (where the kernel allows), as an unprivileged uid, in a fresh temp dir that
// is the only writable place, with rlimits, a cleared environment and a wall-clock timeout that
// kills everything it started. See Note [Sandbox layers] in sandbox.cpp for what each layer stops.
#pragma once
#include <cstdint>
#include <string>

namespace kiln::eval {

struct SandboxLimits {
  double timeout_s = 10.0;              // wall clock; then the whole process tree is SIGKILLed
  int64_t cpu_seconds = 10;             // RLIMIT_CPU
  int64_t memory_bytes = 1LL << 30;     // RLIMIT_AS (address space)
  int64_t file_bytes = 16LL << 20;      // RLIMIT_FSIZE (largest file it may write)
  int64_t processes = 32;               // RLIMIT_NPROC (of the sandbox uid)
  int64_t output_bytes = 16 << 10;      // stdout+stderr kept (the rest is read and dropped)
  std::string python;                   // interpreter; "" = /usr/bin/python3, else python3 on PATH
};

enum class SandboxStatus {
  Passed,    // exit code 0
  Failed,    // a non-zero exit code (an exception, a failed assert)
  Killed,    // ended by a signal (CPU limit, out of memory in the interpreter, ...)
  TimedOut,  // still running at the wall-clock limit: killed with its descendants
  Error,     // the sandbox itself could not be set up (reported, never a crash)
};

struct SandboxResult {
  SandboxStatus status = SandboxStatus::Error;
  int exit_code = -1;   // when it exited
  int signal = 0;       // when a signal ended it
  double wall_s = 0;
  std::string output;   // stdout and stderr interleaved, truncated to output_bytes
  std::string isolation;  // which layers were in force (see sandbox_isolation())
  bool passed() const { return status == SandboxStatus::Passed; }
};

// Runs `program` with `python -I -B prog.py` in the sandbox. Thread-safe: several may run at once.
SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits = {});

// The layers this process can put in place, probed once: e.g. "pid+net+mount namespaces,
// read-only filesystem, uid 65534" as root on Linux, "process group only (...)" elsewhere.
const std::string& sandbox_isolation();

const char* to_string(SandboxStatus s);

}  // namespace kiln::eval
