// PretrainLoader: the packed token stream of all shards, cut into windows of B*T+1 tokens
// (inputs and targets shifted by one). Rank r of N reads windows r, r+N, r+2N, ..., so N ranks
// with batch B read exactly the rows one process with batch N*B reads, in the same order. A
// background thread prefetches batches (pinned memory + non-blocking copy on CUDA); the Cursor
// says which batch comes next, and restoring it replays the exact stream.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"

namespace kiln::data {

// A read-only sequence of tokens: the concatenated shards, or synthetic tokens for benches/tests.
class TokenStream {
 public:
  virtual ~TokenStream() = default;
  virtual int64_t size() const = 0;
  // tokens [start, start+count), start+count <= size().
  virtual void read(int64_t start, int64_t count, int64_t* out) const = 0;
};

// The shards (sorted paths) as one stream; each shard is checked against the tokenizer.
std::shared_ptr<TokenStream> shard_stream(const std::vector<std::string>& paths,
                                          const std::string& tokenizer_sha256, int64_t vocab_size);
// Tokens held in memory (tests, synthetic benchmarks).
std::shared_ptr<TokenStream> memory_stream(std::vector<int64_t> tokens);

class PretrainLoader : public Loader {
 public:
  PretrainLoader(std::shared_ptr<TokenStream> stream, int64_t batch, int64_t seq_len, int rank, int world,
                 torch::Device device, int prefetch = 2);
  ~PretrainLoader() override;

  Batch next() override;
  Cursor cursor() const override;
  void restore(const Cursor& c) override;
  int64_t stream_tokens() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::data
