// The sandbox; see sandbox.h. Everything the child needs is prepared before the fork, because a
// child of a multithreaded process (LibTorch's pools) may only make raw system calls until exec.
#include "eval/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace kiln::eval {
namespace {

// Note [Sandbox layers]
// Each escape the tests try is stopped by at least one layer, most by two:
// - pid namespace (the child is pid 1 of a new one): it cannot name its parent or anything else
//   outside, and when it dies the kernel SIGKILLs every process it left behind (fork bombs,
//   daemons that called setsid()). Without it we fall back to a process group, which a setsid()
//   escapes: that is why the result names the layers in force.
// - network namespace: only a loopback interface that is down; connect() fails even to 127.0.0.1.
// - mount namespace: every mount is remounted read-only and only the temp dir is bind-mounted
//   writable; a fresh /proc shows only the sandbox's own processes.
// - uid 65534 (when we are root), no supplementary groups, no_new_privs: no signals to our
//   processes, no reading /proc/<pid>/environ, no set-uid escalation; RLIMIT_NPROC applies.
// - rlimits: address space, CPU seconds, file size, processes, no core files; the wall-clock
//   timeout SIGKILLs pid 1 (and the process group) even if the CPU limit never triggers.
// - environment replaced by PATH/HOME/LANG and python -I (ignores PYTHON*, user site-packages).
constexpr uid_t kSandboxUid = 65534;
constexpr gid_t kSandboxGid = 65534;
constexpr int kSetupFailed = 125;  // exit code of a child whose set-up failed (message on stderr)
constexpr char kSetupTag[] = "[sandbox] setup failed: ";

struct Plan {
  bool namespaces = false;
  bool drop_uid = false;
  int out_fd = -1;
  const char* dir = nullptr;
  const char* python = nullptr;
  std::vector<char*> argv, envp;
  std::vector<const char*> mounts;
  SandboxLimits lim;
};

[[noreturn]] void child_fail(const char* what) {
  // Only async-signal-safe calls here (no malloc, no stdio).
  ssize_t r = write(2, kSetupTag, sizeof(kSetupTag) - 1);
  r = write(2, what, strlen(what));
  r = write(2, "\n", 1);
  (void)r;
  _exit(kSetupFailed);
}

void set_limit(int resource, int64_t soft, int64_t hard) {
  struct rlimit rl;
  rl.rlim_cur = static_cast<rlim_t>(soft);
  rl.rlim_max = static_cast<rlim_t>(hard);
  if (setrlimit(resource, &rl) != 0) child_fail("setrlimit");
}

[[noreturn]] void child_main(const Plan& p) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // if ./eval dies, the sandbox dies with it
  if (dup2(p.out_fd, 1) < 0 || dup2(p.out_fd, 2) < 0) _exit(kSetupFailed);
  const int devnull = open("/dev/null", O_RDONLY);
  if (devnull < 0 || dup2(devnull, 0) < 0) child_fail("stdin");
  if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
    for (int fd = 3; fd < 4096; ++fd) close(fd);
  setpgid(0, 0);
  if (p.namespaces) {
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail("make mounts private");
    // The work dir first becomes a mount of its own (rw; a bind mount copies the flags of its
    // source, so it must be made before the read-only remounts), then every mount the parent
    // listed (which does not include this new one) turns read-only.
    if (mount(p.dir, p.dir, nullptr, MS_BIND, nullptr) != 0) child_fail("bind the work dir");
    for (const char* m : p.mounts) mount(nullptr, m, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr);
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);  // best effort
  }
  if (chdir(p.dir) != 0) child_fail("chdir");
  set_limit(RLIMIT_AS, p.lim.memory_bytes, p.lim.memory_bytes);
  set_limit(RLIMIT_CPU, p.lim.cpu_seconds, p.lim.cpu_seconds + 1);
  set_limit(RLIMIT_FSIZE, p.lim.file_bytes, p.lim.file_bytes);
  set_limit(RLIMIT_NPROC, p.lim.processes, p.lim.processes);
  set_limit(RLIMIT_CORE, 0, 0);
  set_limit(RLIMIT_NOFILE, 256, 256);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail("no_new_privs");
  if (p.drop_uid) {
    // Raw system calls: glibc's setuid() would try to coordinate threads this child does not have.
    if (syscall(SYS_setgroups, 0, nullptr) != 0) child_fail("setgroups");
    if (syscall(SYS_setresgid, kSandboxGid, kSandboxGid, kSandboxGid) != 0) child_fail("setresgid");
    if (syscall(SYS_setresuid, kSandboxUid, kSandboxUid, kSandboxUid) != 0) child_fail("setresuid");
  }
  execve(p.python, p.argv.data(), p.envp.data());
  child_fail("exec of the python interpreter (as uid 65534 it must be outside /root)");
}

// Mount points of this process, from /proc/self/mountinfo (field 5), read before the fork.
std::vector<std::string> mount_points() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string f[5];
    for (auto& x : f) ss >> x;
    if (!f[4].empty()) out.push_back(f[4]);
  }
  return out;
}

pid_t spawn(const Plan& p) {
  if (p.namespaces) {
    // Like fork(), but the child starts in new pid, network and mount namespaces.
    const long pid = syscall(SYS_clone, SIGCHLD | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS, nullptr, nullptr,
                             nullptr, 0L);
    if (pid == 0) child_main(p);
    return static_cast<pid_t>(pid);
  }
  const pid_t pid = fork();
  if (pid == 0) child_main(p);
  return pid;
}

struct Probe {
  bool namespaces = false, drop_uid = false;
  std::string text;
};

const Probe& probe() {
  static const Probe pr = [] {
    Probe r;
    r.drop_uid = geteuid() == 0;
    const long pid = syscall(SYS_clone, SIGCHLD | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS, nullptr, nullptr,
                             nullptr, 0L);
    std::string why;
    if (pid == 0) _exit(0);
    if (pid > 0) {
      int st = 0;
      waitpid(static_cast<pid_t>(pid), &st, 0);
      r.namespaces = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    } else {
      why = std::strerror(errno);
    }
    r.text = r.namespaces ? "pid+net+mount namespaces, read-only filesystem except the work dir"
                          : "process group only: no pid/net/mount namespaces (" + why +
                                "), so the network is reachable and setsid() escapes the timeout kill";
    r.text += r.drop_uid ? ", uid 65534" : ", same uid as ./eval (not root, cannot switch)";
    r.text += ", rlimits, cleared environment";
    return r;
  }();
  return pr;
}

std::string find_python(const std::string& want) {
  if (!want.empty()) return want;
  for (const char* c : {"/usr/bin/python3", "/usr/local/bin/python3"})
    if (access(c, X_OK) == 0) return c;
  const char* path = getenv("PATH");
  std::istringstream ss(path ? path : "");
  std::string d;
  while (std::getline(ss, d, ':'))
    if (!d.empty() && access((d + "/python3").c_str(), X_OK) == 0) return d + "/python3";
  return "python3";
}

}  // namespace

const char* to_string(SandboxStatus s) {
  switch (s) {
    case SandboxStatus::Passed: return "passed";
    case SandboxStatus::Failed: return "failed";
    case SandboxStatus::Killed: return "killed";
    case SandboxStatus::TimedOut: return "timed out";
    case SandboxStatus::Error: return "sandbox error";
  }
  return "?";
}

const std::string& sandbox_isolation() { return probe().text; }

SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& lim) {
  namespace fs = std::filesystem;
  using Clock = std::chrono::steady_clock;
  SandboxResult res;
  const Probe& pr = probe();
  res.isolation = pr.text;

  std::string tmpl = (fs::temp_directory_path() / "kiln-sandbox-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    res.output = std::string("[sandbox] cannot create a temp dir: ") + std::strerror(errno);
    return res;
  }
  const std::string dir = tmpl;
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  {
    std::ofstream(dir + "/prog.py", std::ios::binary) << program;
    chmod((dir + "/prog.py").c_str(), 0644);
    if (pr.drop_uid && chown(dir.c_str(), kSandboxUid, kSandboxGid) != 0) {
      res.output = std::string("[sandbox] chown of the work dir: ") + std::strerror(errno);
      return res;
    }
  }

  Plan p;
  p.namespaces = pr.namespaces;
  p.drop_uid = pr.drop_uid;
  p.lim = lim;
  p.dir = dir.c_str();
  const std::string python = find_python(lim.python);
  p.python = python.c_str();
  std::vector<std::string> args = {python, "-I", "-B", "prog.py"};
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8"};
  for (auto& a : args) p.argv.push_back(a.data());
  for (auto& e : env) p.envp.push_back(e.data());
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);
  const std::vector<std::string> mounts = pr.namespaces ? mount_points() : std::vector<std::string>{};
  for (const auto& m : mounts) p.mounts.push_back(m.c_str());

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    res.output = std::string("[sandbox] pipe: ") + std::strerror(errno);
    return res;
  }
  p.out_fd = fds[1];
  const auto t0 = Clock::now();
  const pid_t pid = spawn(p);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    res.output = std::string("[sandbox] cannot start the child: ") + std::strerror(errno);
    return res;
  }
  fcntl(fds[0], F_SETFL, O_NONBLOCK);

  // Read its output until it exits or the wall-clock limit passes.
  const auto deadline = t0 + std::chrono::duration<double>(lim.timeout_s);
  bool eof = false, timed_out = false;
  char buf[4096];
  auto drain = [&] {
    while (!eof) {
      const ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n > 0) {
        const size_t have = res.output.size(), cap = static_cast<size_t>(lim.output_bytes);
        res.output.append(buf, std::min(have < cap ? cap - have : 0, static_cast<size_t>(n)));
        continue;
      }
      if (n == 0) eof = true;
      if (n < 0 && errno == EINTR) continue;
      break;
    }
  };
  for (;;) {
    siginfo_t si{};
    const bool exited = waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
    drain();
    if (exited) break;
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {fds[0], POLLIN, 0};
    const int r = poll(&pfd, eof ? 0 : 1, 10);
    if (r > 0 && (pfd.revents & (POLLHUP | POLLERR)) && !(pfd.revents & POLLIN)) eof = true;
  }
  // pid 1 of its namespace: killing it kills every process inside. The group kill covers the
  // fallback without namespaces (and leftovers of a child that exited on its own).
  kill(pid, SIGKILL);
  killpg(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  drain();
  close(fds[0]);
  res.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (timed_out) {
    res.status = SandboxStatus::TimedOut;
  } else if (WIFSIGNALED(status)) {
    res.status = SandboxStatus::Killed;
    res.signal = WTERMSIG(status);
  } else {
    res.exit_code = WEXITSTATUS(status);
    res.status = res.exit_code == 0 ? SandboxStatus::Passed
               : res.exit_code == kSetupFailed && res.output.find(kSetupTag) != std::string::npos
                   ? SandboxStatus::Error
                   : SandboxStatus::Failed;
  }
  return res;
}

}  // namespace kiln::eval
