// engine::Generator; see generator.h. Each row owns a cache slot, its options, its own seeded
// torch::Generator (so its draws never depend on the other rows) and nanochat's tool state
// (inside a python block? forced tokens queued?). step() runs at most two forwards: one for rows
// still prefilling (ragged, right-padded) and one for the rows decoding a single token.
#include "engine/generator.h"

#include <torch/torch.h>

#include <algorithm>
#include <deque>
#include <unordered_map>

#include "core/error.h"
#include "engine/calculator.h"
#include "engine/sampler.h"
#include "model/lm.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"

namespace kiln::engine {

namespace {
struct Row {
  bool live = false;  // slot in use (finished rows stay live until remove())
  bool done = false;
  SamplingOptions o;
  std::vector<int64_t> stops;
  std::vector<int64_t> pending;  // tokens not yet fed to the model
  std::vector<int64_t> prompt;   // with echo: the whole prompt (pending loses what is fed)
  int64_t fed = 0;               // tokens fed so far (the prompt's, then the sampled ones)
  int64_t prompt_len = 0;        // the prompt's length (fed < prompt_len: still prefilling)
  torch::Generator gen;
  GenResult res;
  bool in_python = false;
  std::vector<int64_t> expr;
  std::deque<int64_t> forced;
};
}  // namespace

struct Generator::Impl {
  std::shared_ptr<model::LM> model;
  std::shared_ptr<const tok::Tokenizer> tok;
  model::KVCache cache;
  std::vector<Row> rows;
  torch::Device device = torch::kCPU;
  bool was_training = false;
  int64_t prefill_chunk = 0;  // 0: whole prompts
  StepStats stats;
  int64_t python_start, python_end, output_start, output_end, assistant_end, bos;

  Impl(std::shared_ptr<model::LM> m, std::shared_ptr<const tok::Tokenizer> t, int64_t max_rows)
      : model(std::move(m)), tok(std::move(t)), cache(model->cache_shape(), max_rows, 256) {
    if (!tok) throw Error("engine::Generator: no tokenizer");
    device = model->parameters().front().device();
    was_training = model->is_training();
    model->eval();
    rows.resize(static_cast<size_t>(max_rows));
    // A tokenizer without nanochat's chat tokens (GPT-2's) gets -1: never sampled, so the tool
    // state machine and the default stop on <|assistant_end|> stay inert.
    auto id = [&](const char* name) -> int64_t {
      auto v = tok->find_special(name);
      return v ? int64_t(*v) : -1;
    };
    python_start = id("<|python_start|>");
    python_end = id("<|python_end|>");
    output_start = id("<|output_start|>");
    output_end = id("<|output_end|>");
    assistant_end = id("<|assistant_end|>");
    bos = tok->bos_id();
  }
  ~Impl() {
    if (model) model->train(was_training);
  }

  // nanochat's RowState update, for sampled and forced tokens alike.
  void tool_state(Row& r, int64_t id) {
    if (!r.o.tools) return;
    if (id == python_start) {
      r.in_python = true;
      r.expr.clear();
    } else if (id == python_end && r.in_python) {
      r.in_python = false;
      if (!r.expr.empty()) {
        std::vector<uint32_t> e(r.expr.begin(), r.expr.end());
        if (auto result = calculate(tok->decode(e))) {
          r.forced.push_back(output_start);
          for (uint32_t t : tok->encode(*result)) r.forced.push_back(t);
          r.forced.push_back(output_end);
        }
      }
      r.expr.clear();
    } else if (r.in_python) {
      r.expr.push_back(id);
    }
  }

  // One forward over `group`, row b feeding its first feed[b] pending tokens (all of them when
  // feed is empty). A row with tokens still pending after it (a prompt fed in chunks) samples
  // nothing this step.
  // With all_logits (echo rows, one per forward: its logits are chunk x vocabulary, never the whole
  // prompt's) each fed prompt position's logits give the next prompt token's logprob.
  void forward_group(const std::vector<Slot>& group, std::vector<Event>& events, std::vector<int64_t> feed = {},
                     bool all_logits = false) {
    if (group.empty()) return;
    const int64_t B = static_cast<int64_t>(group.size());
    if (feed.empty())
      for (Slot s : group) feed.push_back(static_cast<int64_t>(rows[s].pending.size()));
    const int64_t T = *std::max_element(feed.begin(), feed.end());
    std::vector<int64_t> flat(static_cast<size_t>(B * T), 0);
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = rows[group[b]].pending;
      std::copy(p.begin(), p.begin() + feed[b], flat.begin() + b * T);
    }
    auto idx = torch::tensor(flat, torch::kInt64).view({B, T}).to(device);
    auto all = model->forward_cached(idx, feed, group, cache, all_logits).to(torch::kCPU, torch::kFloat32);
    stats.rows += B;
    for (int64_t b = 0; b < B; ++b) {
      Row& r = rows[group[b]];
      const bool prompt_chunk = r.fed < static_cast<int64_t>(r.prompt.size());
      if (r.fed < r.prompt_len) stats.prefill_tokens += feed[b];  // a 1-token chunk is prompt too
      if (all_logits && prompt_chunk)
        for (int64_t j = 0; j < feed[b]; ++j) {
          const int64_t next = r.fed + j + 1;
          if (next < static_cast<int64_t>(r.prompt.size()))
            r.res.prompt_logprobs.push_back(token_logprob(all[b][j], r.prompt[static_cast<size_t>(next)], r.o.logprobs));
        }
      r.fed += feed[b];
      r.pending.erase(r.pending.begin(), r.pending.begin() + feed[b]);
      if (!r.pending.empty()) continue;  // mid-prompt: its next chunk comes next step
      const auto logits = all_logits ? all[b][feed[b] - 1] : all[b];
      if (r.o.max_new_tokens == 0) {  // echo only: scored, nothing to sample
        r.done = true;
        r.res.finish = Finish::Length;
        events.push_back(Event{group[b], GenToken{-1, true}, true, Finish::Length});
        continue;
      }
      GenToken t{0, false};
      if (!r.forced.empty()) {
        t = {r.forced.front(), true};
        r.forced.pop_front();
      } else {
        try {
          t = {sample_next(logits, r.o, r.gen), false};
        } catch (const std::exception& e) {  // this row's problem: the batch goes on without it
          r.done = true;
          r.res.finish = Finish::Failed;
          r.res.error = e.what();
          events.push_back(Event{group[b], t, true, Finish::Failed});
          continue;
        }
      }
      if (r.o.logprobs >= 0) r.res.logprobs.push_back(token_logprob(logits, t.id, r.o.logprobs));
      Event ev{group[b], t, false, std::nullopt};
      if (!t.forced && std::find(r.stops.begin(), r.stops.end(), t.id) != r.stops.end()) {
        r.done = true;
        r.res.finish = Finish::Stop;
      } else {
        r.res.ids.push_back(t.id);
        r.res.mask.push_back(t.forced ? 0 : 1);
        tool_state(r, t.id);
        const bool room = cache.length(group[b]) + 1 <= model->max_positions();
        if (static_cast<int64_t>(r.res.ids.size()) >= r.o.max_new_tokens || !room) {
          r.done = true;
          r.res.finish = Finish::Length;
        } else {
          r.pending = {t.id};
        }
      }
      if (r.done) ev.finished = true, ev.finish = r.res.finish;
      events.push_back(ev);
    }
  }
};

Generator::Generator(std::shared_ptr<model::LM> model, std::shared_ptr<const tok::Tokenizer> tokenizer, int64_t max_rows)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(tokenizer), max_rows)) {}
Generator::~Generator() = default;
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;

Generator::Slot Generator::add(std::vector<int64_t> prompt, const SamplingOptions& options) {
  auto& I = *impl_;
  if (prompt.empty()) throw Error("generation: empty prompt", "a prompt needs at least one token (<|bos|>)");
  const int64_t vocab = I.model->vocab_size();
  for (int64_t id : prompt)
    if (id < 0 || id >= vocab)
      throw Error("generation: prompt token " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(vocab));
  const bool score_only = options.echo && options.logprobs >= 0 && options.max_new_tokens == 0;
  if (static_cast<int64_t>(prompt.size()) + (score_only ? 0 : 1) > I.model->max_positions())
    throw Error("generation: a prompt of " + std::to_string(prompt.size()) + " tokens leaves no room in the model's " +
                    std::to_string(I.model->max_positions()) + " positions",
                "shorten the prompt");
  const bool scores = options.echo && options.logprobs >= 0;
  if (options.max_new_tokens < (scores ? 0 : 1))
    throw Error("generation: max_new_tokens = " + std::to_string(options.max_new_tokens), "ask for at least 1 token");
  Slot s = 0;
  while (s < static_cast<Slot>(I.rows.size()) && I.rows[s].live) ++s;
  if (s == static_cast<Slot>(I.rows.size())) {
    I.rows.emplace_back();
    I.cache.add_slots(1);
  }
  Row& r = I.rows[s];
  r = Row{};
  r.live = true;
  r.o = options;
  r.stops = options.stop_tokens.empty() ? std::vector<int64_t>{I.assistant_end, I.bos} : options.stop_tokens;
  if (scores) r.prompt = prompt;
  r.prompt_len = static_cast<int64_t>(prompt.size());
  r.pending = std::move(prompt);
  r.gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  I.cache.reset(s);
  // The cache's room for this row's whole reply now, once, rather than doubling (a copy of every
  // slot's keys) in the middle of decoding.
  I.cache.reserve(std::min(static_cast<int64_t>(r.pending.size()) + options.max_new_tokens, I.model->max_positions()));
  return s;
}

std::vector<Generator::Event> Generator::step() {
  auto& I = *impl_;
  torch::NoGradGuard no_grad;
  std::vector<Slot> prefill, decode, echo;
  std::vector<int64_t> feed, echo_feed;  // per prefill row
  int64_t budget = I.prefill_chunk > 0 ? I.prefill_chunk : INT64_MAX;
  for (Slot s = 0; s < static_cast<Slot>(I.rows.size()); ++s) {
    const Row& r = I.rows[s];
    if (!r.live || r.done) continue;
    const int64_t n = static_cast<int64_t>(r.pending.size());
    const bool scoring = r.fed < static_cast<int64_t>(r.prompt.size());
    if (n == 1 && !scoring) {
      decode.push_back(s);
    } else if (budget > 0) {  // prompts past the step's budget wait for a later step
      (scoring ? echo : prefill).push_back(s);
      (scoring ? echo_feed : feed).push_back(std::min(n, budget));
      budget -= std::min(n, budget);
    }
  }
  std::vector<Event> events;
  I.stats = {};
  for (size_t i = 0; i < echo.size(); ++i) I.forward_group({echo[i]}, events, {echo_feed[i]}, /*all_logits=*/true);
  I.forward_group(prefill, events, feed);
  I.forward_group(decode, events);
  return events;
}

void Generator::set_prefill_chunk(int64_t tokens) {
  if (tokens < 0) throw Error("generation: prefill chunk " + std::to_string(tokens), "give 0 (whole prompts) or more tokens");
  impl_->prefill_chunk = tokens;
}
const Generator::StepStats& Generator::last_step() const { return impl_->stats; }

void Generator::remove(Slot slot) {
  auto& I = *impl_;
  if (slot < 0 || slot >= static_cast<Slot>(I.rows.size()) || !I.rows[slot].live) return;
  I.rows[slot] = Row{};
  I.cache.reset(slot);
}

const GenResult& Generator::result(Slot slot) const { return impl_->rows.at(static_cast<size_t>(slot)).res; }
bool Generator::finished(Slot slot) const { return impl_->rows.at(static_cast<size_t>(slot)).done; }
size_t Generator::live_rows() const {
  size_t n = 0;
  for (const auto& r : impl_->rows) n += r.live && !r.done;
  return n;
}

std::vector<GenResult> Generator::generate(const std::vector<std::vector<int64_t>>& prompts,
                                           const std::vector<SamplingOptions>& options,
                                           const std::function<bool(size_t, const GenToken&)>& on_token) {
  if (options.size() != prompts.size() && options.size() != 1)
    throw Error("generation: " + std::to_string(options.size()) + " option sets for " +
                std::to_string(prompts.size()) + " prompts", "give one per prompt, or one for all");
  std::vector<Slot> slot_of(prompts.size());
  std::unordered_map<Slot, size_t> row_of;
  std::vector<GenResult> out(prompts.size());
  try {
    for (size_t i = 0; i < prompts.size(); ++i) {
      slot_of[i] = add(prompts[i], options[options.size() == 1 ? 0 : i]);
      row_of[slot_of[i]] = i;
    }
    while (live_rows() > 0) {
      for (const Event& ev : step()) {
        const size_t row = row_of.at(ev.slot);
        if (ev.finish == Finish::Failed) throw Error("generation: sampling failed: " + result(ev.slot).error);
        const bool stop = ev.finished && ev.finish == Finish::Stop;
        if (!stop && on_token && !on_token(row, ev.token) && !ev.finished) {
          out[row] = result(ev.slot);
          out[row].finish = Finish::Cancelled;
          remove(ev.slot);
          slot_of[row] = -1;
        }
      }
    }
  } catch (...) {
    for (Slot s : slot_of) remove(s);
    throw;
  }
  for (size_t i = 0; i < prompts.size(); ++i)
    if (slot_of[i] >= 0) {
      out[i] = result(slot_of[i]);
      remove(slot_of[i]);
    }
  return out;
}

}  // namespace kiln::engine
