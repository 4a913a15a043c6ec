// The sandbox's side of the fork (internal to sandbox.cpp): the init, pid 1 of the new namespaces,
// which builds the filesystem view, starts the runner and reports how it ended; and the runner,
// which takes its limits and uid and execs python. Everything is prepared by the parent in a
// ChildPlan first: a child of a multithreaded process may only make raw system calls until exec.
#pragma once
#include <sys/types.h>

#include <vector>

#include "eval/sandbox.h"

namespace kiln::eval::detail {

// File descriptors of the child. The interpreter sees 0-4 only: the secret to give back after the
// program's end (3) and where to give it (4); 5 and 6 are the init's and close before the exec.
constexpr int kSecretFd = 3, kVerdictFd = 4, kCtlFd = 5, kLifeFd = 6;
// Records on the control pipe (init/runner -> parent). The interpreter never holds it.
constexpr char kCtlError = 'E';   // followed by a message up to '\n': the sandbox failed
constexpr char kCtlStatus = 'S';  // followed by the runner's wait status (int, native order)

struct Bind {
  const char* from;  // host path
  const char* to;    // where it appears, under the staging root
  bool dir;          // a directory (read-only) or a device node (bound as it is)
};
struct Link {
  const char* path;    // under the staging root
  const char* target;
};

struct Sysctl {
  const char* path;   // under the staging root's proc (sysctls of the new IPC namespace)
  const char* value;
};

struct ChildPlan {
  bool namespaces = false;  // new pid/net/mount/ipc/uts namespaces and the filesystem view
  bool drop_uid = false;    // switch to `uid` (we are root)
  uid_t uid = 0;
  // As inherited from the parent; the init moves them to 1/2 and kSecretFd..kLifeFd.
  int out_fd = -1, secret_fd = -1, verdict_fd = -1, ctl_fd = -1, life_fd = -1;
  const char* python = nullptr;
  std::vector<char*> argv, envp;  // null-terminated
  const char* work_dir = nullptr; // the program's cwd as it sees it
  // The view (namespaces only), built under `stage` and then made the root:
  const char* stage = nullptr;
  const char* root_opts = nullptr;  // tmpfs options of the (read-only) skeleton root
  const char* work_mount = nullptr; // where the work tmpfs is mounted before it is split
  const char* work_opts = nullptr;  // its tmpfs options (the total size cap)
  const char* work_tmp = nullptr;   // work_mount/tmp  -> bound at stage/tmp
  const char* work_shm = nullptr;   // work_mount/shm  -> bound at stage/dev/shm
  const char* tmp_at = nullptr;     // stage/tmp
  const char* shm_at = nullptr;     // stage/dev/shm
  const char* proc_at = nullptr;    // stage/proc
  const char* prog_path = nullptr;  // work_mount/tmp/prog.py (the init writes the program there)
  const char* program = nullptr;
  size_t program_len = 0;
  std::vector<const char*> mkdirs;  // under stage, parents first
  std::vector<const char*> touches; // empty files (mount points of device nodes)
  std::vector<Bind> binds;
  std::vector<Link> links;
  std::vector<Sysctl> sysctls;
  SandboxLimits lim;  // numbers only are read
};

[[noreturn]] void sandbox_init(const ChildPlan& p);

}  // namespace kiln::eval::detail
