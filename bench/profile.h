// The benches' op profile: profile(dev, n, step) runs `step` n times under the Kineto profiler
// (as torch.profiler) and prints the 25 largest rows by total time per step, "profile:" lines:
// ATen ops (inclusive) on the CPU, GPU kernels on CUDA. Header-only: each bench is one file.
#pragma once
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

// Runs `step` n times under the Kineto profiler and prints the 25 largest rows by total time.
inline void profile(const torch::Device& dev, int64_t n, const std::function<void()>& step) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  const prof::ProfilerConfig cfg(prof::ProfilerState::KINETO, false, false);
  std::set<ActivityType> acts{ActivityType::CPU};
  if (dev.is_cuda()) acts.insert(ActivityType::CUDA);
  prof::prepareProfiler(cfg, acts);
  prof::enableProfiler(cfg, acts);
  for (int64_t i = 0; i < n; ++i) step();
  auto result = prof::disableProfiler();
  std::map<std::string, std::pair<double, int64_t>> rows;  // name -> (ms, count)
  double total = 0;
  for (const auto& e : result->events()) {
    const bool gpu = e.deviceType() == c10::DeviceType::CUDA;
    if (gpu != dev.is_cuda()) continue;
    auto& r = rows[e.name().substr(0, 90)];
    r.first += double(e.durationNs()) / 1e6 / double(n);
    r.second += 1;
    if (gpu) total += double(e.durationNs()) / 1e6 / double(n);
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> v(rows.begin(), rows.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::printf("profile: %s per step (%lld steps); %s\n", dev.is_cuda() ? "GPU kernels" : "ATen ops (inclusive)",
              (long long)n, dev.is_cuda() ? ("sum of kernel time " + std::to_string(total) + " ms").c_str() : "");
  std::printf("profile: %10s %6s  %s\n", "ms/step", "calls", "name");
  for (size_t i = 0; i < v.size() && i < 25; ++i)
    std::printf("profile: %10.2f %6lld  %s\n", v[i].second.first, (long long)(v[i].second.second / n),
                v[i].first.c_str());
}


}  // namespace
