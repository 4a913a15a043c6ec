// nanochat's guard (nanochat/execution.py, GUARD): what its execute_code runs in the interpreter
// before a HumanEval program. kiln runs it too, as the sandbox's prelude, so that a program that
// uses one of the functions it disables (exit(), os.remove, os.getcwd, subprocess.Popen, ...)
// fails here as it fails there, and the memory limits are set the same way (RLIMIT_STACK here,
// after start-up, also keeps thread stacks at their default size, as in nanochat).
#include "eval/sandbox.h"

namespace kiln::eval {

std::string nanochat_guard(int64_t memory_bytes) {
  const std::string m = std::to_string(memory_bytes);
  return "import faulthandler, builtins, os, shutil, subprocess, sys\n"
         "import resource\n"
         "resource.setrlimit(resource.RLIMIT_AS, (" + m + ", " + m + "))\n"
         "resource.setrlimit(resource.RLIMIT_DATA, (" + m + ", " + m + "))\n"
         "resource.setrlimit(resource.RLIMIT_STACK, (" + m + ", " + m + "))\n"
         "faulthandler.disable()\n"
         "builtins.exit = None\n"
         "builtins.quit = None\n"
         "builtins.help = None\n"
         "os.environ['OMP_NUM_THREADS'] = '1'\n"
         "for name in ('kill', 'system', 'putenv', 'remove', 'removedirs', 'rmdir', 'fchdir',\n"
         "             'setuid', 'fork', 'forkpty', 'killpg', 'rename', 'renames', 'truncate',\n"
         "             'replace', 'unlink', 'fchmod', 'fchown', 'chmod', 'chown', 'chroot',\n"
         "             'lchflags', 'lchmod', 'lchown', 'getcwd', 'chdir'):\n"
         "    setattr(os, name, None)\n"
         "for name in ('rmtree', 'move', 'chown'):\n"
         "    setattr(shutil, name, None)\n"
         "subprocess.Popen = None\n"
         "for name in ('ipdb', 'joblib', 'resource', 'psutil', 'tkinter'):\n"
         "    sys.modules[name] = None\n"
         "del name\n";
}

}  // namespace kiln::eval
