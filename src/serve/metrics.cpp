// Metrics; see metrics.h. Names follow Prometheus' conventions (kiln_ prefix, _total counters,
// _seconds histograms with cumulative le buckets ending in +Inf).
#include "serve/metrics.h"

#include <cstdio>

#include "serve/scheduler.h"

namespace kiln::serve {

namespace {
std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

std::string metric(const std::string& name, const char* type, const std::string& help, const std::string& samples) {
  return "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + samples;
}
}  // namespace

void Histogram::observe(double seconds) {
  std::lock_guard lk(mu_);
  size_t b = 0;
  while (b < kBounds.size() && seconds > kBounds[b]) ++b;
  if (b < kBounds.size()) ++counts_[b];
  ++count_;
  sum_ += seconds;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::lock_guard lk(mu_);
  std::string out;
  uint64_t cum = 0;
  for (size_t b = 0; b < kBounds.size(); ++b) {
    cum += counts_[b];
    out += name + "_bucket{le=\"" + num(kBounds[b]) + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + num(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
  return metric(name, "histogram", help, out);
}

std::string Metrics::render(const SchedulerStats& s) const {
  std::string out;
  out += metric("kiln_requests_total", "counter", "Completion requests admitted to the queue, by endpoint.",
                "kiln_requests_total{endpoint=\"completions\"} " + std::to_string(completion_requests.load()) +
                    "\nkiln_requests_total{endpoint=\"chat\"} " + std::to_string(chat_requests.load()) + "\n");
  out += metric("kiln_prompt_tokens_total", "counter", "Prompt tokens of the admitted requests.",
                "kiln_prompt_tokens_total " + std::to_string(prompt_tokens.load()) + "\n");
  out += metric("kiln_generated_tokens_total", "counter", "Tokens generated.",
                "kiln_generated_tokens_total " + std::to_string(s.tokens) + "\n");
  out += metric("kiln_rejected_total", "counter", "Requests refused with 503 (slots and queue full).",
                "kiln_rejected_total " + std::to_string(s.rejected) + "\n");
  out += metric("kiln_cancelled_total", "counter", "Requests dropped because the client went away.",
                "kiln_cancelled_total " + std::to_string(s.cancelled) + "\n");
  out += metric("kiln_busy_slots", "gauge", "Rows decoding now.", "kiln_busy_slots " + std::to_string(s.live_rows) + "\n");
  out += metric("kiln_slots", "gauge", "Rows that may decode at once (--slots).",
                "kiln_slots " + std::to_string(s.slots) + "\n");
  out += metric("kiln_queue_depth", "gauge", "Rows waiting in the queue.",
                "kiln_queue_depth " + std::to_string(s.queued_rows) + "\n");
  out += metric("kiln_step_rows_total", "counter", "Rows fed to the model, summed over the engine's batched steps.",
                "kiln_step_rows_total " + std::to_string(step_rows.load()) + "\n");
  out += metric("kiln_prefill_tokens_total", "counter", "Prompt tokens fed to the model (prefill chunks).",
                "kiln_prefill_tokens_total " + std::to_string(prefill_tokens.load()) + "\n");
  out += step_time.render("kiln_step_seconds", "One batched engine step (a forward over every live row, and sampling).");
  out += time_to_first_token.render("kiln_time_to_first_token_seconds",
                                    "From a request's submission to its row's first token.");
  out += time_per_output_token.render("kiln_time_per_output_token_seconds", "Between two tokens of a row.");
  return out;
}

}  // namespace kiln::serve
