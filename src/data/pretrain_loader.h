// PretrainLoader, two layouts (data.layout):
//  - stream (packed): the token stream of all shards, cut into windows of B*T+1 tokens (inputs and
//    targets shifted by one);
//  - bestfit: rows of T+1 tokens that each start at a document's <|bos|>, documents packed
//    best-fit and cropped when nothing fits (data/bestfit.h; nanochat's current loader).
// Rank r of N reads global batches r, r+N, r+2N, ... (B rows each), so N ranks with batch B read
// exactly the rows one process with batch N*B reads, in the same order; under best-fit every rank
// packs all ranks' rows (lengths only) and reads the tokens of its own. A background thread
// prefetches batches (pinned memory + non-blocking copy on CUDA); the Cursor says which batch
// comes next (and holds best-fit's buffer), and restoring it replays the exact rows.
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
  // The documents: their start offsets, then the end of the last (D+1 entries).
  virtual std::vector<int64_t> doc_bounds() const = 0;
  // The id every document starts with (-1: not checked).
  virtual int64_t bos_id() const { return -1; }
  // Where stream offset `pos` lies, for messages ("shard F, token i").
  virtual std::string locate(int64_t pos) const { return "token " + std::to_string(pos); }
};

// The shards (sorted paths) as one stream; each shard is checked against the tokenizer.
std::shared_ptr<TokenStream> shard_stream(const std::vector<std::string>& paths,
                                          const std::string& tokenizer_sha256, int64_t vocab_size);
// Tokens held in memory (tests, synthetic benchmarks): one document, or the documents at
// `doc_bounds` (D+1 offsets) that start with `bos_id`.
std::shared_ptr<TokenStream> memory_stream(std::vector<int64_t> tokens);
std::shared_ptr<TokenStream> memory_stream(std::vector<int64_t> tokens, std::vector<int64_t> doc_bounds,
                                           int64_t bos_id);

enum class Packing { Stream, BestFit };

class PretrainLoader : public Loader {
 public:
  PretrainLoader(std::shared_ptr<TokenStream> stream, int64_t batch, int64_t seq_len, int rank, int world,
                 torch::Device device, Packing packing = Packing::Stream, int prefetch = 2);
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
