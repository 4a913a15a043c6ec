// ChatLoader: conversations from chat shards (tokens + /loss_mask) for midtraining and SFT.
// Rows (one conversation each) of a task mixture are shuffled per epoch from run.seed; rank r of N
// takes rows r, r+N, ... Two layouts: `packed` renders rows back to back and cuts B*T+1 windows
// exactly like pretraining; `padded` puts one row per batch row, right-padded to the longest row.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "data/loader.h"
#include "tokenizer/tokenizer.h"

namespace kiln::data {

struct ChatSource {
  std::vector<std::string> shards;  // chat shard paths
  int64_t repeat = 1;               // the source's rows appear this many times per epoch
};

struct ChatLoaderOptions {
  int64_t batch = 1, seq_len = 1;
  int rank = 0, world = 1;
  uint64_t seed = 0;
  bool padded = false;       // false: packed windows
  bool train_on_all = false; // true: every target trained (only padding is -1)
  int64_t pad_id = 0;        // input id written into padding
  std::string tokenizer_sha256;
  int64_t vocab_size = -1;
  torch::Device device = torch::kCPU;
};

// A chat stage's loader options from its config: packed windows, or padded rows for data.layout
// padded (auto: padded for SFT); train_on: all trains every target. The one definition of a chat
// stage's rows, used by the Trainer (data.train, data.val) and by ./eval's bits per byte.
ChatLoaderOptions chat_loader_options(const Config& cfg, bool sft, const tok::Tokenizer& tok, int rank, int world,
                                      torch::Device device);

class ChatLoader : public Loader {
 public:
  // Reads every shard into memory (tokens + mask), checking tokenizer and mask; throws
  // kiln::Error naming the file when a shard has no /loss_mask (not made with ./prepare --chat).
  ChatLoader(const std::vector<ChatSource>& sources, const ChatLoaderOptions& o);
  ~ChatLoader() override;

  // The stream depends on the cursor alone: batch k of rank r is a pure function of (k, r).
  Batch next() override;
  Cursor cursor() const override;
  void restore(const Cursor& c) override;

  int64_t num_rows() const;       // conversations per epoch (repeats counted)
  int64_t epoch_tokens() const;   // tokens per epoch (repeats counted)
  // Optimizer steps that cover `epochs` passes, given what one step consumes over all ranks
  // (rows for padded, tokens for packed). The same on every rank. At least 1.
  int64_t steps_for_epochs(double epochs, int64_t rows_per_step, int64_t tokens_per_step) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::data
