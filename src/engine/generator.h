// engine::Generator — batched generation with the KV cache (docs/architecture.md, "The parts"): ragged prompts,
// per-row sampling options and seeds, stop tokens, and nanochat's calculator tool state machine.
// generate() is built on slot-level primitives (add / step / remove) so that a server can let rows
// join and leave a running batch (continuous batching); torch stays out of this header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/logprobs.h"
#include "engine/sampling_options.h"

namespace kiln::tok {
class Tokenizer;
}
namespace kiln::model {
class LM;  // model/lm.h
}

namespace kiln::engine {

struct GenToken {
  int64_t id;
  bool forced;  // true: tool output forced by the state machine; false: sampled
};

// Failed: sampling this row failed (its error says why); the other rows go on.
enum class Finish { Stop, Length, Cancelled, Failed };

struct GenResult {
  std::vector<int64_t> ids;   // generated tokens, stop token excluded
  std::vector<uint8_t> mask;  // per id: 1 sampled, 0 forced
  Finish finish = Finish::Length;
  std::string error;  // Finish::Failed: what failed
  // With options.logprobs >= 0: one per id, then one for the stop token when the row ended on it.
  std::vector<TokenLogprob> logprobs;
  // With options.echo: the logprob of each prompt token after the first, given the ones before it.
  std::vector<TokenLogprob> prompt_logprobs;
};

class Generator {
 public:
  // `max_rows`: how many rows may be live at once (cache slots); 0 = grow as needed.
  Generator(std::shared_ptr<model::LM> model, std::shared_ptr<const tok::Tokenizer> tokenizer, int64_t max_rows = 0);
  ~Generator();
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;

  // One row per prompt, decoded together in one batch with a KV cache (ragged prompts).
  // `options` has one entry per prompt, or a single entry for all. on_token(row, token) sees each
  // token as produced (stop tokens are not shown); returning false cancels that row.
  std::vector<GenResult> generate(const std::vector<std::vector<int64_t>>& prompts,
                                  const std::vector<SamplingOptions>& options,
                                  const std::function<bool(size_t, const GenToken&)>& on_token = {});

  // ---- slot-level primitives (what generate() is made of; the server's continuous batching) ----
  using Slot = int64_t;
  struct Event {
    Slot slot;
    GenToken token;
    bool finished;                 // this token (or the stop that followed) ended the row
    std::optional<Finish> finish;  // set when finished
  };
  // Queue a new row; its prompt is prefilled on the next step(). Throws kiln::Error on an empty
  // prompt or one longer than the model's rotary table. A row with options.echo and
  // max_new_tokens 0 scores its prompt and ends (an Event with finished = true, Finish::Length
  // and token.id = -1) without sampling.
  Slot add(std::vector<int64_t> prompt, const SamplingOptions& options);
  // One forward over all live rows (prefills of new rows, one decode token for the others) and
  // one new token per unfinished row. A row whose sampling throws ends with Finish::Failed (an
  // Event with finished = true) and the others go on; a failed forward throws. A row whose stop token was sampled yields an Event with
  // finished = true and token.id = the stop token. Empty when no row is live.
  std::vector<Event> step();
  // Prefill in chunks: each step() feeds at most `tokens` prompt tokens in all (0 = whole prompts,
  // the default). A long prompt then takes several steps, and the rows already decoding get their
  // token every step instead of waiting for the whole prompt (llama.cpp's n_batch, vLLM's
  // max_num_batched_tokens). Rows prefill in slot order; a row whose prompt is not yet all fed
  // yields no Event.
  void set_prefill_chunk(int64_t tokens);
  // What the last step() fed: rows (prefill and decode) and prompt tokens.
  struct StepStats {
    int64_t rows = 0, prefill_tokens = 0;
  };
  const StepStats& last_step() const;
  // Cancel / free a row (finished or not); its cache slot is reused by a later add().
  void remove(Slot slot);
  // The row so far (ids, mask, finish once finished).
  const GenResult& result(Slot slot) const;
  bool finished(Slot slot) const;
  size_t live_rows() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::engine
