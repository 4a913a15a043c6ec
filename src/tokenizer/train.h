// Training a tokenizer from files (./tokenizer train): stream documents, count chunks on all
// cores, then run incremental BPE. A plain-text file is one document read in blocks; each JSONL
// record is one document, capped at doc_cap characters (nanochat's 10,000); max_chars bounds all.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace kiln::tok {

struct TrainOptions {
  std::vector<std::string> inputs;  // files or folders
  uint32_t vocab_size = 65536;      // 256 bytes + merges + 9 specials
  uint64_t max_chars = 10'000'000'000ull;
  uint64_t doc_cap = 10'000;        // per JSONL document; 0 = no cap
  std::string field = "text";
  std::string pattern;              // "" = GPT-4 pattern
  unsigned threads = 0;             // 0 = all cores
  bool verbose = false;             // progress lines on stderr
};

struct TrainStats {
  uint64_t docs = 0, chars = 0, bytes = 0, unique_chunks = 0;
  double count_seconds = 0, merge_seconds = 0;
};

Tokenizer train_tokenizer(const TrainOptions& opt, TrainStats* stats = nullptr);

}  // namespace kiln::tok
