// The sandbox's child processes; see sandbox_child.h and Note [Sandbox layers] in sandbox.cpp.
// Only async-signal-safe calls here (no malloc, no stdio, no locks): we are a clone of a
// multithreaded process whose other threads may have held any lock at the moment of the clone.
#include "eval/sandbox_child.h"

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

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kiln::eval::detail {
namespace {

int g_ctl = -1;  // where failures are reported (the parent's control pipe); a copy per child

size_t put(char* buf, size_t at, size_t cap, const char* s) {
  while (*s && at + 1 < cap) buf[at++] = *s++;
  return at;
}

// Reports "what[ detail] (errno N)" to the parent as an infrastructure failure and exits.
[[noreturn]] void fail(const char* what, const char* detail = nullptr) {
  const int e = errno;
  char buf[512], num[16];
  int n = 0;
  for (int v = e; n == 0 || v > 0; v /= 10) num[n++] = static_cast<char>('0' + v % 10);
  size_t at = 0;
  buf[at++] = kCtlError;
  at = put(buf, at, sizeof(buf), what);
  if (detail) at = put(buf, at, sizeof(buf), " ");
  if (detail) at = put(buf, at, sizeof(buf), detail);
  at = put(buf, at, sizeof(buf), " (errno ");
  while (n > 0 && at + 1 < sizeof(buf)) buf[at++] = num[--n];
  at = put(buf, at, sizeof(buf), ")\n");
  ssize_t r = write(g_ctl, buf, at);
  (void)r;
  _exit(125);
}

void set_limit(int resource, int64_t soft, int64_t hard) {
  struct rlimit rl;
  rl.rlim_cur = static_cast<rlim_t>(soft);
  rl.rlim_max = static_cast<rlim_t>(hard);
  if (setrlimit(resource, &rl) != 0) fail("setrlimit");
}

// Moves the inherited descriptors to their fixed numbers and closes every other one.
void arrange_fds(const ChildPlan& p) {
  const int from[5] = {p.out_fd, p.secret_fd, p.verdict_fd, p.ctl_fd, p.life_fd};
  int moved[5];
  for (int i = 0; i < 5; ++i)
    if ((moved[i] = fcntl(from[i], F_DUPFD, 100)) < 0) fail("dup of the sandbox's pipes");
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || dup2(devnull, 0) < 0) fail("stdin from /dev/null");
  const int to[5] = {1, kSecretFd, kVerdictFd, kCtlFd, kLifeFd};
  for (int i = 0; i < 5; ++i)
    if (dup2(moved[i], to[i]) < 0) fail("dup2");
  if (dup2(1, 2) < 0) fail("dup2");
  g_ctl = kCtlFd;
  if (syscall(SYS_close_range, 7U, ~0U, 0U) != 0)
    for (int fd = 7; fd < 65536; ++fd) close(fd);
  // The interpreter must never hold these two: the control pipe is how an infrastructure failure
  // is told apart from the program's, the life pipe how the init sees its parent gone.
  fcntl(kCtlFd, F_SETFD, FD_CLOEXEC);
  fcntl(kLifeFd, F_SETFD, FD_CLOEXEC);
}

void make_dir(const char* path, mode_t mode) {
  if (mkdir(path, mode) != 0 && errno != EEXIST) fail(path);
}

// The program's whole filesystem: a read-only skeleton root holding read-only binds of /usr, /etc,
// the interpreter's prefix and a few device nodes, a fresh proc, and one size-capped tmpfs that
// appears as /tmp and /dev/shm. Nothing else of the host is reachable by any path: no files to
// read, no Unix-domain sockets to connect to (a read-only mount does not stop a connect()).
void build_view(const ChildPlan& p) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("make mounts private");
  if (mount("kiln-root", p.stage, "tmpfs", MS_NOSUID | MS_NODEV, p.root_opts) != 0) fail("tmpfs for the root");
  for (const char* d : p.mkdirs) make_dir(d, 0755);
  for (const char* f : p.touches) {
    const int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail(f);
    close(fd);
  }
  for (const Link& l : p.links)
    if (symlink(l.target, l.path) != 0) fail(l.path);
  for (const Bind& b : p.binds) {
    if (mount(b.from, b.to, nullptr, MS_BIND, nullptr) != 0) fail(b.from);
    if (b.dir && mount(nullptr, b.to, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
      fail(b.to);
  }
  // The work tmpfs: its size is the cap on everything the program writes, /tmp and /dev/shm
  // together (it is mounted once, split in two by binds, and the first mount dropped).
  if (mount("kiln-work", p.work_mount, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, p.work_opts) != 0)
    fail("tmpfs for the work dir");
  make_dir(p.work_tmp, 0700);
  make_dir(p.work_shm, 0700);
  if (p.drop_uid && (chown(p.work_tmp, p.uid, p.uid) != 0 || chown(p.work_shm, p.uid, p.uid) != 0))
    fail("chown of the work dir");
  const int fd = open(p.prog_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("create prog.py");
  for (size_t at = 0; at < p.program_len;) {
    const ssize_t n = write(fd, p.program + at, p.program_len - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write prog.py (is the program larger than the work dir?)");
    at += static_cast<size_t>(n);
  }
  close(fd);
  if (mount(p.work_tmp, p.tmp_at, nullptr, MS_BIND, nullptr) != 0) fail("bind /tmp");
  if (mount(p.work_shm, p.shm_at, nullptr, MS_BIND, nullptr) != 0) fail("bind /dev/shm");
  if (umount2(p.work_mount, MNT_DETACH) != 0) fail("detach the work tmpfs");
  // A proc of the new pid namespace: only the sandbox's own processes, and of those (hidepid=2)
  // only the program's own, not the init's.
  if (mount("proc", p.proc_at, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") != 0) fail("mount proc");
  // SysV shared memory counts against the same cap (the IPC namespace's shmmax/shmall): else a
  // program could pin host memory in segments, without limit, until the run ends.
  for (const Sysctl& c : p.sysctls) {
    const int fd = open(c.path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, c.value, strlen(c.value)) < 0) fail("write", c.path);
    close(fd);
  }
  // Make the skeleton the root; the old root is detached and with it every host path.
  if (chdir(p.stage) != 0) fail("chdir to the new root");
  if (syscall(SYS_pivot_root, ".", ".") == 0) {
    if (umount2(".", MNT_DETACH) != 0) fail("detach the old root");
  } else if (chroot(".") != 0) {  // a rootfs (initramfs) cannot be pivoted; uid != 0 cannot leave a chroot
    fail("pivot_root and chroot");
  }
  if (chdir("/") != 0) fail("chdir /");
  if (mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
    fail("remount the root read-only");
}

[[noreturn]] void runner(const ChildPlan& p, pid_t init_pid) {
  close(kLifeFd);
  set_limit(RLIMIT_AS, p.lim.memory_bytes, p.lim.memory_bytes);
  set_limit(RLIMIT_CPU, p.lim.cpu_seconds, p.lim.cpu_seconds + 1);
  set_limit(RLIMIT_FSIZE, p.lim.file_bytes, p.lim.file_bytes);
  set_limit(RLIMIT_NPROC, p.lim.processes, p.lim.processes);
  // The stack of the main thread, and glibc's default for other threads' stacks, which it takes
  // from this soft limit at start-up (unlimited would mean 32 MiB each and few threads within
  // RLIMIT_AS). The hard limit leaves room for nanochat's guard, which raises it to memory_bytes.
  set_limit(RLIMIT_STACK, std::min<int64_t>(8LL << 20, p.lim.memory_bytes), p.lim.memory_bytes);
  set_limit(RLIMIT_CORE, 0, 0);
  set_limit(RLIMIT_NOFILE, 256, 256);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("no_new_privs");
  if (p.drop_uid) {
    // Raw system calls: glibc's setuid() would try to coordinate threads this child does not have.
    if (syscall(SYS_setgroups, 0, nullptr) != 0) fail("setgroups");
    if (syscall(SYS_setresgid, p.uid, p.uid, p.uid) != 0) fail("setresgid");
    if (syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) fail("setresuid");
  }
  // The uid switch clears the parent-death signal, so it is set here, after it; a parent (the
  // init) already gone before this line would not send it, hence the getppid() check.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("pdeathsig");
  if (getppid() != init_pid) _exit(125);
  if (chdir(p.work_dir) != 0) fail("chdir to the work dir");
  execve(p.python, p.argv.data(), p.envp.data());
  fail("exec of the python interpreter", p.python);
}

}  // namespace

[[noreturn]] void sandbox_init(const ChildPlan& p) {
  g_ctl = p.ctl_fd;
  // SIGKILL when the thread that started us dies, even by kill -9: as pid 1 of the namespace our
  // death kills every process in it, and the mount namespace (with the work tmpfs) goes with them.
  // The init keeps its uid, so nothing clears this; the program cannot reset it for the init.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("pdeathsig");
  arrange_fds(p);
  // A parent that died before the prctl above sent no signal. getppid() cannot tell (it is 0 for
  // pid 1 of a namespace), but the life pipe can: only the parent holds its write end.
  struct pollfd life = {kLifeFd, POLLIN, 0};
  if (poll(&life, 1, 0) > 0 && (life.revents & POLLHUP)) _exit(0);
  setpgid(0, 0);
  if (p.namespaces) build_view(p);
  const pid_t self = static_cast<pid_t>(syscall(SYS_getpid));
  const long pid = syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, 0L);
  if (pid == 0) runner(p, self);
  if (pid < 0) fail("fork of the runner");
  for (int fd = 0; fd <= kVerdictFd; ++fd) close(fd);
  // Reap everything (orphans of the program are re-parented to us) until the runner ends; our exit
  // then kills whatever it left behind.
  int st = 0;
  for (;;) {
    const pid_t w = waitpid(-1, &st, 0);
    if (w == static_cast<pid_t>(pid)) break;
    if (w < 0 && errno != EINTR) fail("wait for the runner");
  }
  char rec[1 + sizeof(int)];
  rec[0] = kCtlStatus;
  std::memcpy(rec + 1, &st, sizeof(int));
  ssize_t r = write(kCtlFd, rec, sizeof(rec));
  (void)r;
  _exit(0);
}

}  // namespace kiln::eval::detail
