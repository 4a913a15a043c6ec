// Continuous batching (llama.cpp's server loop): one engine thread owns the Generator and runs the
// decode loop; HTTP threads submit() requests into one bounded queue and read their reply's text
// from a per-request Channel. Up to `slots` rows decode together in one step(); a queued request
// joins at the next step; a finished or cancelled (client gone) request frees its rows at once.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/generator.h"
#include "engine/logprobs.h"
#include "serve/metrics.h"

namespace kiln::tok {
class Tokenizer;
}

namespace kiln::serve {

struct Job;  // serve/request.h

// One piece of a reply: text of choice `choice`; the last piece of a choice has done = true.
struct Delta {
  int64_t choice = 0;
  std::string text;
  bool done = false;
  std::string finish;  // "stop" | "length" when done
  int64_t tokens = 0;  // tokens generated so far by this choice (the usage count)
  std::string error;   // the engine failed this request
  // On the last piece, when the request asked: the generated tokens' logprobs (the stop token's
  // last when the row ended on one), and with echo the prompt's (for prompt tokens 1..).
  std::vector<engine::TokenLogprob> logprobs, prompt_logprobs;
};

// The engine thread pushes, an HTTP thread pops; cancel() (the client went away) asks the engine
// to drop the request at its next step.
class Channel {
 public:
  void push(Delta d);
  // Everything pushed so far, waiting up to `timeout` for at least one piece.
  std::vector<Delta> pop(std::chrono::milliseconds timeout);
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Delta> pieces_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerStats {
  int64_t slots = 0, queue = 0;
  int64_t live_rows = 0, queued_rows = 0;
  int64_t steps = 0;             // batched decode steps so far
  int64_t requests = 0;          // admitted into the batch
  int64_t cancelled = 0;         // dropped because the client went away
  int64_t rejected = 0;          // refused because slots + queue were full (503)
  int64_t last_admit_step = -1;  // `steps` when the last request joined the batch
  int64_t last_cancel_step = -1; // `steps` when the last cancelled request freed its rows
  int64_t tokens = 0;            // generated in all
};

class Scheduler {
 public:
  Scheduler(engine::Generator gen, std::shared_ptr<const tok::Tokenizer> tok, int64_t slots, int64_t queue);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the job's n rows; nullptr when the rows in the batch and the queue would exceed
  // slots + queue (the caller answers 503).
  std::shared_ptr<Channel> submit(const Job& job);
  SchedulerStats stats() const;
  // The operator metrics (GET /metrics); the engine thread observes the token latencies.
  Metrics& metrics() { return metrics_; }

 private:
  struct Row;
  struct Request;
  void loop();
  void admit(std::shared_ptr<Request> r);
  // The one way rows leave the batch: the request's rows still in it (only choice `choice` when
  // >= 0) free their Generator slots and Rows, and live_rows_ drops by as many. Engine thread only,
  // with mu_ held (live_rows_ is read by submit() and stats() on HTTP threads).
  void release(Request& r, int64_t choice = -1);
  void finish_row(int64_t slot, Delta d);
  void dispatch(const engine::Generator::Event& ev);
  void fail_all(const std::string& what);

  engine::Generator gen_;
  std::shared_ptr<const tok::Tokenizer> tok_;
  const int64_t slots_, queue_cap_;
  // mu_ guards what HTTP threads share with the engine thread: the queue, the row counts and stop_.
  // The engine thread holds it while it drops cancelled requests and admits queued ones, and for
  // each release() of rows during a step.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> queue_;  // guarded by mu_
  int64_t queued_rows_ = 0, live_rows_ = 0;     // guarded by mu_
  std::vector<std::shared_ptr<Request>> active_;  // engine thread only
  std::vector<std::unique_ptr<Row>> rows_;        // by Generator slot; engine thread only
  std::atomic<int64_t> steps_{0}, requests_{0}, cancelled_{0}, rejected_{0}, tokens_{0};
  std::atomic<int64_t> last_admit_step_{-1}, last_cancel_step_{-1};
  Metrics metrics_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kiln::serve
