// Scheduler; see scheduler.h. Each loop: drop requests whose client went away (freeing their
// Generator slots), admit queued requests in order while their rows fit the free slots, then one
// batched step(); each event's token goes through its row's StopText to the request's Channel.
#include "serve/scheduler.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "engine/token_text.h"
#include "serve/request.h"
#include "serve/stop_text.h"

namespace kiln::serve {

void Channel::push(Delta d) {
  {
    std::lock_guard lk(mu_);
    pieces_.push_back(std::move(d));
  }
  cv_.notify_all();
}

std::vector<Delta> Channel::pop(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return !pieces_.empty(); });
  std::vector<Delta> out;
  out.swap(pieces_);
  return out;
}

struct Scheduler::Request {
  std::vector<std::vector<int64_t>> prompts;  // per choice
  std::vector<engine::SamplingOptions> options;
  std::vector<std::string> stop;
  bool echo = false;   // with top >= 0: the prompt's logprobs come with the last piece
  int64_t top = -1;    // logprobs: alternatives per token; -1 none
  std::shared_ptr<Channel> channel;
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
  std::vector<int64_t> slots;  // per choice, once admitted (-1 when done)
  int64_t open = 0;            // choices not yet done
};

struct Scheduler::Row {
  std::shared_ptr<Request> req;
  int64_t choice = 0;
  StopText text;
  std::optional<std::chrono::steady_clock::time_point> last;  // when its last token came
};

Scheduler::Scheduler(engine::Generator gen, std::shared_ptr<const tok::Tokenizer> tok, int64_t slots, int64_t queue)
    : gen_(std::move(gen)), tok_(std::move(tok)), slots_(slots), queue_cap_(queue) {
  if (slots < 1) throw Error("serve: --slots " + std::to_string(slots), "give at least 1 slot");
  if (queue < 0) throw Error("serve: --queue " + std::to_string(queue), "give 0 or more queued rows");
  rows_.resize(static_cast<size_t>(slots));
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::shared_ptr<Channel> Scheduler::submit(const Job& job) {
  auto r = std::make_shared<Request>();
  for (const auto& prompt : job.prompts)
    for (int64_t i = 0; i < job.n; ++i) {
      r->prompts.push_back(prompt);
      r->options.push_back(job.options);
      r->options.back().seed = job.options.seed + static_cast<uint64_t>(i);
      // echo: the prompt's logprobs come from its own prefill (chunked, in the batch); max_tokens 0
      // scores only. The row takes a slot either way.
      r->options.back().echo = job.echo && job.options.logprobs >= 0;
      if (!job.generate) r->options.back().max_new_tokens = 0;
    }
  r->stop = job.stop;
  r->echo = job.echo;
  r->top = job.options.logprobs;
  r->channel = std::make_shared<Channel>();
  const int64_t rows = static_cast<int64_t>(r->prompts.size());
  {
    std::lock_guard lk(mu_);
    if (live_rows_ + queued_rows_ + rows > slots_ + queue_cap_) {
      ++rejected_;
      return nullptr;
    }
    queued_rows_ += rows;
    queue_.push_back(r);
  }
  cv_.notify_all();
  return r->channel;
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard lk(mu_);
    s.live_rows = live_rows_;
    s.queued_rows = queued_rows_;
  }
  s.slots = slots_, s.queue = queue_cap_;
  s.steps = steps_, s.requests = requests_, s.cancelled = cancelled_, s.rejected = rejected_;
  s.last_admit_step = last_admit_step_, s.last_cancel_step = last_cancel_step_, s.tokens = tokens_;
  return s;
}

// Engine thread, mu_ held.
void Scheduler::admit(std::shared_ptr<Request> r) {
  const int64_t n = static_cast<int64_t>(r->prompts.size());
  queued_rows_ -= n;
  r->slots.assign(static_cast<size_t>(n), -1);
  if (r->options.front().max_new_tokens == 0 && !r->options.front().echo) {  // echo, max_tokens 0, no logprobs
    for (int64_t i = 0; i < n; ++i) r->channel->push(Delta{i, "", true, "length", 0});
    ++requests_;
    return;
  }
  try {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t s = gen_.add(r->prompts[i], r->options[i]);
      r->slots[static_cast<size_t>(i)] = s;
      rows_.at(static_cast<size_t>(s)) = std::make_unique<Row>(Row{r, i, StopText(r->stop), std::nullopt});
      ++r->open, ++live_rows_;
    }
  } catch (const std::exception& e) {  // the request checks make this unreachable; fail it, not the server
    log::warn("[serve] a request could not join the batch: %s", e.what());
    release(*r);
    r->channel->push(Delta{0, "", true, "", 0, e.what()});
    return;
  }
  active_.push_back(std::move(r));
  ++requests_;
  last_admit_step_ = steps_.load();
}

// Engine thread, mu_ held (see scheduler.h).
void Scheduler::release(Request& r, int64_t choice) {
  for (size_t i = 0; i < r.slots.size(); ++i) {
    const int64_t s = r.slots[i];
    if (s < 0 || (choice >= 0 && static_cast<int64_t>(i) != choice)) continue;
    gen_.remove(s);
    rows_.at(static_cast<size_t>(s)).reset();
    r.slots[i] = -1;
    --r.open;
    --live_rows_;
  }
}

// Engine thread: the choice of row `slot` is over; its row leaves the batch now.
void Scheduler::finish_row(int64_t slot, Delta d) {
  auto& row = rows_.at(static_cast<size_t>(slot));
  const auto req = row->req;  // keeps the request alive past release()
  const int64_t choice = row->choice;
  if (req->top >= 0) d.logprobs = gen_.result(slot).logprobs;
  if (req->echo && req->top >= 0) d.prompt_logprobs = gen_.result(slot).prompt_logprobs;
  req->channel->push(std::move(d));
  std::lock_guard lk(mu_);
  release(*req, choice);
}

void Scheduler::fail_all(const std::string& what) {
  log::warn("[serve] generation failed, failing %zu request(s): %s", active_.size(), what.c_str());
  std::lock_guard lk(mu_);
  for (auto& r : active_) {
    release(*r);
    r->channel->push(Delta{0, "", true, "", 0, what});
  }
  active_.clear();
}

// Engine thread: one event's token through its row's StopText to the request's Channel.
void Scheduler::dispatch(const engine::Generator::Event& ev) {
  Row& row = *rows_.at(static_cast<size_t>(ev.slot));
  const auto& result = gen_.result(ev.slot);
  const int64_t tokens = static_cast<int64_t>(result.ids.size());
  if (ev.finished && ev.finish == engine::Finish::Failed) {  // this row's sampling failed: its request fails
    log::warn("[serve] sampling failed for one row: %s", result.error.c_str());
    finish_row(ev.slot, Delta{row.choice, "", true, "", tokens, result.error});
    return;
  }
  if (ev.finished && ev.token.id < 0) {  // max_tokens 0: the prompt was scored, nothing generated
    finish_row(ev.slot, Delta{row.choice, "", true, "length", 0});
    return;
  }
  if (ev.finished && ev.finish == engine::Finish::Stop) {  // the stop token, not shown
    finish_row(ev.slot, Delta{row.choice, row.text.flush(), true, "stop", tokens});
    return;
  }
  ++tokens_;
  const auto now = std::chrono::steady_clock::now();
  const auto since = [&](auto t) { return std::chrono::duration<double>(now - t).count(); };
  if (row.last) metrics_.time_per_output_token.observe(since(*row.last));
  else metrics_.time_to_first_token.observe(since(row.req->submitted));
  row.last = now;
  auto out = row.text.push(engine::token_text(*tok_, ev.token.id));
  if (out.stopped) {
    finish_row(ev.slot, Delta{row.choice, std::move(out.text), true, "stop", tokens});
  } else if (ev.finished) {
    finish_row(ev.slot, Delta{row.choice, out.text + row.text.flush(), true, "length", tokens});
  } else if (!out.text.empty()) {
    row.req->channel->push(Delta{row.choice, std::move(out.text), false, "", tokens});
  }
}

void Scheduler::loop() {
  // OpenMP's thread count is per thread: this one takes what main set (./serve --threads).
  at::init_num_threads();
  while (true) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty() || !active_.empty(); });
      if (stop_) break;
      // Clients that went away: their rows leave before this step.
      for (auto& r : active_) {
        if (!r->channel->cancelled()) continue;
        release(*r);
        ++cancelled_;
        last_cancel_step_ = steps_.load();
      }
      std::erase_if(active_, [](const auto& r) { return r->open == 0; });
      while (!queue_.empty()) {
        auto& r = queue_.front();
        const int64_t n = static_cast<int64_t>(r->prompts.size());
        if (r->channel->cancelled()) {
          queued_rows_ -= n;
          ++cancelled_;
          queue_.pop_front();
          continue;
        }
        if (live_rows_ + n > slots_) break;
        auto req = std::move(r);
        queue_.pop_front();
        admit(std::move(req));
      }
      if (active_.empty()) continue;
    }
    try {
      const auto t0 = std::chrono::steady_clock::now();
      const auto events = gen_.step();
      metrics_.step_time.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      metrics_.step_rows += gen_.last_step().rows;
      metrics_.prefill_tokens += gen_.last_step().prefill_tokens;
      ++steps_;
      for (const auto& ev : events) dispatch(ev);
    } catch (const std::exception& e) {  // a failed forward: fail the batch, keep serving
      fail_all(e.what());
    }
    std::erase_if(active_, [](const auto& r) { return r->open == 0; });
  }
}

}  // namespace kiln::serve
