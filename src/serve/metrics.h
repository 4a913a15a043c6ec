// ./serve's operator metrics, written in the Prometheus text format (GET /metrics): request,
// prompt-token and generated-token counters, busy slots, queue depth, 503s (from SchedulerStats),
// and histograms of time to first token and of the time between a row's tokens (observed by the
// engine thread as tokens are produced, streamed or not).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace kiln::serve {

struct SchedulerStats;  // serve/scheduler.h

class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
  void observe(double seconds);
  // "# HELP/# TYPE" and the _bucket{le=...}, _sum and _count lines.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mu_;
  std::array<uint64_t, kBounds.size()> counts_{};  // per bucket (not cumulative)
  uint64_t count_ = 0;
  double sum_ = 0;
};

struct Metrics {
  std::atomic<int64_t> completion_requests{0}, chat_requests{0}, prompt_tokens{0};
  // The engine thread's batched steps: rows fed per step (prefill rows and decode rows alike) and
  // the time each step took, so that an operator sees how full the batches are and what a step costs.
  std::atomic<int64_t> step_rows{0}, prefill_tokens{0};
  Histogram time_to_first_token, time_per_output_token, step_time;
  // The whole exposition; `s` gives the generated tokens, busy slots, queue depth and 503s.
  std::string render(const SchedulerStats& s) const;
};

}  // namespace kiln::serve
