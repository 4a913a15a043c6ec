// ./tokenizer train's engine: a reader on the calling thread gathers ~16 MB batches of text,
// each batch is split and counted by all threads into per-thread maps (merged once at the end),
// then train_bpe finds the merges. Memory is bounded by the distinct chunks, not the input size.
#include "tokenizer/train.h"

#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "tokenizer/bpe_train.h"
#include "core/corpus.h"
#include "core/parallel.h"
#include "tokenizer/split.h"

namespace kiln::tok {

Tokenizer train_tokenizer(const TrainOptions& opt, TrainStats* stats_out) {
  const uint32_t base = 256 + uint32_t(special_tokens().size());
  if (opt.vocab_size < base)
    throw Error("[tokenizer] --vocab-size " + std::to_string(opt.vocab_size) + " is too small",
                "it counts 256 byte tokens and 9 special tokens: use at least " + std::to_string(base) +
                    " (265 = byte-level, no merges)");
  const std::string pattern = opt.pattern.empty() ? kGpt4Pattern : opt.pattern;
  Splitter splitter(pattern);
  unsigned threads = opt.threads ? opt.threads : default_threads();
  std::vector<ChunkCounts> counts(threads);
  TrainStats st;
  auto t0 = std::chrono::steady_clock::now();

  std::vector<std::string> batch;
  size_t batch_bytes = 0;
  auto flush = [&] {
    // Contiguous groups of the batch, one per thread, each into that thread's own map.
    size_t per = (batch.size() + threads - 1) / threads;
    parallel_for(threads, [&](size_t t) {
      for (size_t i = t * per; i < std::min(batch.size(), (t + 1) * per); ++i)
        count_chunks(splitter, batch[i], counts[t]);
    }, threads);
    batch.clear();
    batch_bytes = 0;
  };
  uint64_t budget = opt.max_chars;
  auto add = [&](std::string text) {  // returns false once the character budget is spent
    if (budget == 0) return false;
    uint64_t n = count_chars(text);
    if (n > budget) { text = std::string(cap_chars(text, budget)); n = budget; }
    budget -= n;
    st.chars += n;
    st.bytes += text.size();
    batch_bytes += text.size();
    batch.push_back(std::move(text));
    if (batch_bytes >= (16u << 20)) flush();
    return budget > 0;
  };

  for (const auto& path : expand_inputs(opt.inputs)) {
    bool more = true;
    if (is_jsonl(path)) {
      JsonlReader r(path);
      nlohmann::json rec;
      while (more && r.next(rec)) {
        ++st.docs;
        more = add(std::string(cap_chars(text_field(rec, opt.field, path, r.line_no()), opt.doc_cap)));
      }
    } else {
      TextBlockReader r(path, 0, file_size(path), safe_cut);
      std::string block;
      ++st.docs;
      // A cut block can change the last chunk only when the budget ends inside it: acceptable.
      while (more && r.next(block)) more = add(std::move(block));
    }
    if (opt.verbose)
      fprintf(stderr, "[tokenizer] read %s (%.1f MB so far)\n", path.c_str(), double(st.bytes) / 1e6);
    if (!more) break;
  }
  flush();
  ChunkCounts all;
  for (auto& c : counts) merge_counts(all, std::move(c));
  st.unique_chunks = all.size();
  auto t1 = std::chrono::steady_clock::now();
  st.count_seconds = std::chrono::duration<double>(t1 - t0).count();
  auto merges = train_bpe(all, opt.vocab_size - base, [&](uint32_t done, uint32_t total) {
    if (opt.verbose) fprintf(stderr, "[tokenizer] merges %u / %u\n", done, total);
  });
  st.merge_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  if (merges.size() < opt.vocab_size - base)
    throw Error("[tokenizer] the training text allows only " + std::to_string(merges.size()) + " merges, not " +
                    std::to_string(opt.vocab_size - base),
                "give more text or a smaller --vocab-size (at most " + std::to_string(base + merges.size()) + ")");
  if (stats_out) *stats_out = st;
  return Tokenizer::from_merges(std::move(merges), pattern);
}

}  // namespace kiln::tok
