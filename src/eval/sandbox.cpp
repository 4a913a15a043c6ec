// The sandbox, parent side; see sandbox.h. Everything the child needs is prepared here, before the
// clone, because a child of a multithreaded process may only make raw system calls until exec
// (the child side is sandbox_child.cpp).
#include "eval/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "eval/sandbox_child.h"
#include "core/remove_tree.h"

namespace kiln::eval {
namespace {

// Note [Sandbox layers]
// Each escape the tests try is stopped by at least one layer, most by two:
// - pid namespace: the init (our clone, root, pid 1) starts the program as its child; nothing
//   outside can be named or signalled, and when the init dies the kernel SIGKILLs every process
//   in the namespace (fork bombs, daemons that called setsid()). The init has PR_SET_PDEATHSIG,
//   so a kill -9 of ./eval kills it and with it the program (the program cannot reset the init's
//   death signal, and a uid switch, which would clear it, never happens in the init).
// - network namespace: only a loopback interface that is down; connect() fails even to 127.0.0.1,
//   and abstract Unix sockets (scoped by network namespace) of the host cannot be named.
// - mount namespace with a filesystem view of its own (sandbox_child.cpp): a read-only skeleton
//   root with read-only binds of /usr, /etc, the interpreter's prefix and /dev/{null,zero,...}, a
//   fresh proc (hidepid=2) and one tmpfs of limits.disk_bytes that is /tmp (the work dir) and
//   /dev/shm. The host's /tmp, /run, /home, /work, ... are not there at all, so neither their
//   files nor their Unix-domain sockets can be reached (a read-only mount would not stop a
//   connect()). Nothing is written to the host disk: when the namespace goes, so does the tmpfs,
//   even after a kill -9 of ./eval.
// - IPC namespace: SysV shared memory, semaphores, message queues and POSIX message queues of
//   the program die with it (POSIX shm lives in its /dev/shm tmpfs). UTS: its own hostname.
// - a uid of its own per run (when we are root), no supplementary groups, no_new_privs: no
//   signals to our processes, no reading /proc/<pid>/ of the init, no set-uid escalation; and
//   RLIMIT_NPROC, which counts per uid, is never shared by concurrent runs.
// - rlimits: address space, CPU seconds, file size, processes, no core files; the wall-clock
//   timeout SIGKILLs the init (and the process group) even if the CPU limit never triggers.
// - environment replaced by PATH/HOME/LANG and python -I (ignores PYTHON*, user site-packages).
//
// Note [Pass verdict]
// Exit status 0 is no verdict: sys.exit(0), os._exit(0), raise SystemExit or an atexit hook give
// it at any point. A run passes when the program ran to its end: the harness (python -c) compiles
// prog.py, runs it with exec(), and only after exec() returned reads a per-run secret from fd 3
// and writes it to fd 4. The parent compares what arrives on fd 4 with the secret (and wants exit
// status 0 as well). The secret is 128 random bits made per run; it is not in the program, its
// files, argv or environment, nor in the interpreter's memory before the end: until the harness
// reads it, it sits in the kernel's pipe buffer. So no exit before the end, no print of a guessed
// marker, no override of print or builtins can produce it, and what a program writes on stdout
// does not matter (a pass does not depend on the output, which may be truncated).
// What it cannot stop: a program and the harness share one interpreter, so a program written
// against this harness (reading fd 3 itself, writing fd 4, exiting) forges a pass; no in-process
// marker can prevent that, since whatever the harness can do after the end the program can do
// before it. The marker closes the accidental and the generic cheats; nanochat's own check
// (exit status 0) is passed even by sys.exit(0).
constexpr char kStatusTag[] = "[sandbox] ";

struct Probe {
  bool namespaces = false, drop_uid = false;
  std::string text;
};

constexpr unsigned long kCloneFlags = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;

const Probe& probe() {
  static const Probe pr = [] {
    Probe r;
    r.drop_uid = geteuid() == 0;
    const long pid = syscall(SYS_clone, SIGCHLD | kCloneFlags, nullptr, nullptr, nullptr, 0L);
    std::string why;
    if (pid == 0) _exit(0);
    if (pid > 0) {
      int st = 0;
      waitpid(static_cast<pid_t>(pid), &st, 0);
      r.namespaces = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    } else {
      why = std::strerror(errno);
    }
    r.text = r.namespaces ? "pid+net+mount+ipc+uts namespaces, a read-only view of /usr and /etc only, "
                            "a private size-capped tmpfs /tmp and /dev/shm"
                          : "process group only: no pid/net/mount/ipc namespaces (" + why +
                                "), so the network and host files are reachable and setsid() escapes the timeout kill";
    r.text += r.drop_uid ? ", a uid of its own" : ", same uid as ./eval (not root, cannot switch)";
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

// A uid no other run of this process holds; across processes the range is large enough that a
// collision is unlikely and harmless (they are in separate pid namespaces; only NPROC is shared).
class UidLease {
 public:
  UidLease() {
    std::lock_guard<std::mutex> lk(mu());
    std::random_device rd;
    do uid_ = kSandboxUidBase + rd() % kSandboxUidCount;
    while (!used().insert(uid_).second);
  }
  ~UidLease() {
    std::lock_guard<std::mutex> lk(mu());
    used().erase(uid_);
  }
  UidLease(const UidLease&) = delete;
  UidLease& operator=(const UidLease&) = delete;
  uid_t uid() const { return uid_; }

 private:
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::set<uid_t>& used() {
    static std::set<uid_t> s;
    return s;
  }
  uid_t uid_ = 0;
};

std::string random_secret() {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof(b)) {
    const ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    else if (errno != EINTR) throw std::runtime_error("getrandom failed");
  }
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) s += {hex[c >> 4], hex[c & 15]};
  return s;
}

std::string py_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\\' || c == '\'') q += '\\';
    q += c;
  }
  return q + "'";
}

// The interpreter's -c program; see Note [Pass verdict]. The os functions are taken before the
// program runs, so that replacing os.read/os.write can only stop the verdict, never forge it.
std::string harness(const std::string& prog_path, const std::string& prelude) {
  const std::string p = py_quote(prog_path);
  return "import os as _kiln_os\n"
         "_kiln_read, _kiln_write = _kiln_os.read, _kiln_os.write\n"
         "with open(" + p + ", 'rb') as _kiln_f:\n"
         "    _kiln_code = compile(_kiln_f.read(), " + p + ", 'exec')\n"
         "del _kiln_f, _kiln_os\n" +
         prelude + "\n"
         "exec(_kiln_code, {'__name__': '__main__'})\n"
         "_kiln_write(" + std::to_string(detail::kVerdictFd) + ", _kiln_read(" + std::to_string(detail::kSecretFd) +
         ", 64))\n";
}

// Strings of the plan; a deque never moves what it holds, so the c_str()s stay valid.
struct Strings {
  std::deque<std::string> d;
  const char* keep(std::string s) { return d.emplace_back(std::move(s)).c_str(); }
};

// The filesystem view (see build_view in sandbox_child.cpp), as paths under `stage`.
void plan_view(detail::ChildPlan& p, Strings& s, const std::string& python, const SandboxLimits& lim) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // Where the new root is assembled: any existing directory none of the binds come from.
  const std::string stage = fs::is_directory("/dev/shm", ec) && !fs::is_symlink("/dev/shm", ec) ? "/dev/shm" : "/tmp";
  p.stage = s.keep(stage);
  p.root_opts = "size=1m,nr_inodes=1024,mode=0755";
  std::set<std::string> made;
  auto mkdirs = [&](const std::string& path) {  // path is absolute in the view
    std::string at;
    std::istringstream ss(path);
    for (std::string part; std::getline(ss, part, '/');)
      if (!part.empty() && made.insert(at += "/" + part).second) p.mkdirs.push_back(s.keep(stage + at));
  };
  std::vector<std::string> bound;
  for (const char* top : {"/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    if (fs::is_symlink(top, ec)) {
      p.links.push_back({s.keep(stage + top), s.keep(fs::read_symlink(top, ec).string())});
    } else if (fs::is_directory(top, ec)) {
      mkdirs(top);
      p.binds.push_back({top, s.keep(stage + top), true});
      bound.push_back(top);
    }
  }
  // The interpreter's prefix when it is elsewhere (a venv, /opt/python, pyenv): bound at the same path.
  for (const std::string& exe : {python, fs::weakly_canonical(python, ec).string()}) {
    const fs::path prefix = fs::path(exe).parent_path().parent_path();
    if (!prefix.is_absolute() || prefix == "/" || !fs::is_directory(prefix, ec)) continue;
    bool covered = false;
    for (const auto& b : bound) covered = covered || prefix == b || prefix.string().rfind(b + "/", 0) == 0;
    if (covered) continue;
    mkdirs(prefix.string());
    p.binds.push_back({s.keep(prefix.string()), s.keep(stage + prefix.string()), true});
    bound.push_back(prefix.string());
  }
  for (const char* dir : {"/tmp", "/proc", "/dev", "/dev/shm", "/.kiln-work"}) mkdirs(dir);
  for (const char* dev : {"null", "zero", "full", "random", "urandom"}) {
    const std::string host = std::string("/dev/") + dev;
    if (!fs::exists(host, ec)) continue;
    p.touches.push_back(s.keep(stage + host));
    p.binds.push_back({s.keep(host), s.keep(stage + host), false});
  }
  for (auto [name, target] : {std::pair{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                              {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}})
    p.links.push_back({s.keep(stage + "/dev/" + name), target});
  const std::string work = stage + "/.kiln-work";
  p.work_mount = s.keep(work);
  p.work_opts = s.keep("size=" + std::to_string(lim.disk_bytes) + ",nr_inodes=4096,mode=0755");
  p.work_tmp = s.keep(work + "/tmp");
  p.work_shm = s.keep(work + "/shm");
  p.prog_path = s.keep(work + "/tmp/prog.py");
  p.tmp_at = s.keep(stage + "/tmp");
  p.shm_at = s.keep(stage + "/dev/shm");
  p.proc_at = s.keep(stage + "/proc");
  const int64_t page = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
  p.sysctls.push_back({s.keep(stage + "/proc/sys/kernel/shmmax"), s.keep(std::to_string(lim.disk_bytes))});
  p.sysctls.push_back({s.keep(stage + "/proc/sys/kernel/shmall"), s.keep(std::to_string(lim.disk_bytes / page))});
}

struct Pipe {
  int fd[2] = {-1, -1};
  bool open() { return pipe2(fd, O_CLOEXEC) == 0; }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
  ~Pipe() {
    close_end(0);
    close_end(1);
  }
};

// Reads what is there now (non-blocking), up to `cap` bytes kept.
void read_available(int fd, std::string& into, size_t cap) {
  fcntl(fd, F_SETFL, O_NONBLOCK);
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      into.append(buf, std::min(into.size() < cap ? cap - into.size() : 0, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
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
  auto setup_error = [&](const std::string& what) {
    res.status = SandboxStatus::Error;
    res.output = kStatusTag + what + ": " + std::strerror(errno);
    return res;
  };

  // Without namespaces the work dir is a host temp dir (removed afterwards); with them it is the
  // tmpfs /tmp of the view, which the init fills, and nothing is made on the host.
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code ec;
      if (!d.empty()) kiln::remove_tree(d, ec);
    }
  } cleanup;
  std::optional<UidLease> uid;
  if (pr.drop_uid) uid.emplace();
  std::string work_dir = "/tmp";
  if (!pr.namespaces) {
    std::string tmpl = (fs::temp_directory_path() / "kiln-sandbox-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return setup_error("cannot create a temp dir");
    cleanup.d = work_dir = tmpl;
    std::ofstream(work_dir + "/prog.py", std::ios::binary) << program;
    chmod((work_dir + "/prog.py").c_str(), 0644);
    if (uid && chown(work_dir.c_str(), uid->uid(), uid->uid()) != 0) return setup_error("chown of the work dir");
  }

  detail::ChildPlan p;
  Strings strs;
  p.namespaces = pr.namespaces;
  p.drop_uid = uid.has_value();
  p.uid = uid ? uid->uid() : 0;
  p.lim = lim;
  p.work_dir = work_dir.c_str();
  p.program = program.data();
  p.program_len = program.size();
  const std::string python = find_python(lim.python);
  p.python = python.c_str();
  if (pr.namespaces) plan_view(p, strs, python, lim);
  const std::string secret = random_secret();
  std::vector<std::string> args = {python, "-I", "-B", "-c", harness(work_dir + "/prog.py", lim.prelude)};
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + work_dir, "LANG=C.UTF-8"};
  for (auto& a : args) p.argv.push_back(a.data());
  for (auto& e : env) p.envp.push_back(e.data());
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);

  Pipe out, sec, verdict, ctl, life;
  if (!out.open() || !sec.open() || !verdict.open() || !ctl.open() || !life.open()) return setup_error("pipe");
  // The secret waits in the pipe; the write end is closed so the harness reads it and then EOF.
  if (write(sec.fd[1], secret.data(), secret.size()) != static_cast<ssize_t>(secret.size())) return setup_error("pipe");
  sec.close_end(1);
  p.out_fd = out.fd[1];
  p.secret_fd = sec.fd[0];
  p.verdict_fd = verdict.fd[1];
  p.ctl_fd = ctl.fd[1];
  p.life_fd = life.fd[0];

  const auto t0 = Clock::now();
  const long cl = syscall(SYS_clone, SIGCHLD | (pr.namespaces ? kCloneFlags : 0UL), nullptr, nullptr, nullptr, 0L);
  if (cl == 0) detail::sandbox_init(p);
  if (cl < 0) return setup_error("cannot start the child");
  const pid_t pid = static_cast<pid_t>(cl);
  out.close_end(1);
  sec.close_end(0);
  verdict.close_end(1);
  ctl.close_end(1);
  life.close_end(0);  // life.fd[1] stays open until the init is reaped: see sandbox_init
  fcntl(out.fd[0], F_SETFL, O_NONBLOCK);

  // Read its output until it exits or the wall-clock limit passes.
  const auto deadline = t0 + std::chrono::duration<double>(lim.timeout_s);
  const size_t cap = static_cast<size_t>(lim.output_bytes);
  bool timed_out = false;
  for (;;) {
    siginfo_t si{};
    const bool exited = waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
    read_available(out.fd[0], res.output, cap);
    if (exited) break;
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {out.fd[0], POLLIN, 0};
    poll(&pfd, 1, 10);
  }
  // pid 1 of its namespace: killing it kills every process inside. The group kill covers the
  // fallback without namespaces.
  kill(pid, SIGKILL);
  killpg(pid, SIGKILL);
  int init_status = 0;
  while (waitpid(pid, &init_status, 0) < 0 && errno == EINTR) {
  }
  read_available(out.fd[0], res.output, cap);
  std::string got, ctl_bytes;
  read_available(verdict.fd[0], got, 256);
  read_available(ctl.fd[0], ctl_bytes, 4096);
  res.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();

  // The control records: an infrastructure failure ('E'), or how the runner ended ('S').
  std::string error;
  bool have_status = false;
  int status = 0;
  for (size_t i = 0; i < ctl_bytes.size();) {
    if (ctl_bytes[i] == detail::kCtlError) {
      const size_t nl = ctl_bytes.find('\n', i);
      error += ctl_bytes.substr(i + 1, nl == std::string::npos ? std::string::npos : nl - i - 1);
      i = nl == std::string::npos ? ctl_bytes.size() : nl + 1;
    } else if (ctl_bytes[i] == detail::kCtlStatus && i + 1 + sizeof(int) <= ctl_bytes.size()) {
      std::memcpy(&status, ctl_bytes.data() + i + 1, sizeof(int));
      have_status = true;
      i += 1 + sizeof(int);
    } else {
      break;
    }
  }
  if (!error.empty()) {
    res.status = SandboxStatus::Error;
    res.output += std::string("\n") + kStatusTag + "setup failed: " + error;
  } else if (timed_out) {
    res.status = SandboxStatus::TimedOut;
  } else if (!have_status) {
    res.status = SandboxStatus::Error;
    res.output += std::string("\n") + kStatusTag + "the sandbox's init ended without a report (wait status " +
                  std::to_string(init_status) + ")";
  } else if (WIFSIGNALED(status)) {
    res.status = SandboxStatus::Killed;
    res.signal = WTERMSIG(status);
  } else {
    res.exit_code = WEXITSTATUS(status);
    const bool reached_end = got == secret;
    res.status = res.exit_code == 0 && reached_end ? SandboxStatus::Passed : SandboxStatus::Failed;
    if (res.exit_code == 0 && !reached_end)
      res.output += std::string("\n") + kStatusTag +
                    "exit status 0, but the program did not run to its end (sys.exit, os._exit, SystemExit?)";
  }
  return res;
}

}  // namespace kiln::eval
