// ./prepare's engine: text, JSONL text records or conversations -> train/val HDF5 shards named
// {train,val}_NNNN.h5 (about shard_tokens tokens each, cut between documents). Streaming: inputs
// are read in blocks/batches and encoded on all cores, so memory does not grow with the input.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::data {

struct PrepareOptions {
  std::string tokenizer;             // tokenizer JSON
  std::string output;                // directory for the shards
  std::vector<std::string> inputs;   // files or folders
  bool chat = false;                 // conversations (messages lists, GSM8K question/answer)
  double val_fraction = 0.01;
  std::string field = "text";        // JSONL text field (not --chat)
  uint64_t shard_tokens = 100'000'000;
  size_t max_len = 2048;             // --chat: conversations truncated to this many tokens (0 = none)
  std::string format = "auto";       // --chat: auto | messages | sharegpt | gsm8k | arc | mmlu
  bool skip_bad = false;             // --chat: count and report malformed records instead of failing
  bool progress = true;              // progress line on stderr
};

struct PrepareResult {
  std::vector<std::string> train, val;  // shard paths written
  uint64_t train_tokens = 0, val_tokens = 0, train_docs = 0, val_docs = 0;
  uint64_t skipped = 0;                     // malformed records left out (--skip-bad only)
  std::vector<std::string> skipped_first;   // the first few of them: "file:line: why"
};

// Split rules. A plain-text file: its first (1 - F) bytes, cut after a newline, are one train
// document and the rest one val document (nanoGPT's split). JSONL: record i (counted over all
// inputs) goes to val when floor((i+1)F) > floor(iF), an even spread that needs no record count.
// Every document starts with <|bos|>. Existing {train,val}_NNNN.h5 in the output are replaced only
// once all new shards are written; the output then holds kiln_dataset.json (complete).
PrepareResult prepare_shards(const PrepareOptions& opt);

// The byte offset where the train part of a plain-text file of this content ends.
uint64_t text_split_point(const std::string& path, double val_fraction);

}  // namespace kiln::data
