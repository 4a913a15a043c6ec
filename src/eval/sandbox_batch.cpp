// Many sandboxed programs at once, with the policy for infrastructure errors: such an error says
// nothing about the program, so it is retried, and one that persists stops the caller with a
// kiln::Error rather than becoming a failed sample in a score. See sandbox.h.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "eval/sandbox.h"

namespace kiln::eval {

std::vector<SandboxResult> run_sandbox_batch(const std::vector<std::string>& programs, const SandboxLimits& lim,
                                             int jobs, int attempts, const SandboxRun& run) {
  attempts = std::max(1, attempts);
  std::vector<SandboxResult> out(programs.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string failure;
  auto worker = [&] {
    for (size_t i; !stop && (i = next++) < programs.size();) {
      SandboxResult r;
      for (int a = 1; a <= attempts; ++a) {
        r = run(programs[i], lim);
        r.attempts = a;
        if (r.status != SandboxStatus::Error) break;
        log::warn("[sandbox] infrastructure error, run %d of %d: %s", a, attempts, r.output.c_str());
        if (a < attempts) std::this_thread::sleep_for(std::chrono::milliseconds(200 * a));
      }
      if (r.status == SandboxStatus::Error) {
        std::lock_guard<std::mutex> lk(mu);
        if (failure.empty()) failure = r.output;
        stop = true;
      }
      out[i] = std::move(r);
    }
  };
  std::vector<std::thread> pool;
  const size_t n = std::min(programs.size(), static_cast<size_t>(std::max(1, jobs)));
  for (size_t j = 0; j < n; ++j) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
  if (!failure.empty())
    throw Error("[sandbox] a program could not be run in " + std::to_string(attempts) +
                " attempts: " + failure +
                "\nThis is an infrastructure failure, not the program's, so no score is made of it. The "
                "sandbox here: " + sandbox_isolation() +
                ". Check that python3 is installed and readable by other users (e.g. not under /root).");
  return out;
}

}  // namespace kiln::eval
