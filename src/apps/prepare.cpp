// ./prepare — text, JSONL or conversations into train/val HDF5 token shards. Scripts rely on this
// command-line shape (issue #3); the work is data::prepare_shards so that tests can reach it.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "core/error.h"          // Error
#include "data/shard_prepare.h"  // PrepareOptions, prepare_shards

int main(int argc, char** argv) {
  CLI::App app{"Tokenize text, jsonl or conversations into {train,val}_NNNN.h5 HDF5 shards.\n"
               "A plain-text file: its first (1-F) (cut at a line) is train, the rest val; JSONL: every\n"
               "1/F-th record is val. Each document starts with <|bos|>.", "prepare"};
  kiln::data::PrepareOptions o;
  int64_t shard_tokens = 100000000, max_len = 2048;
  app.add_option("--tokenizer", o.tokenizer, "tokenizer JSON")->required();
  app.add_option("--output", o.output, "output directory for {train,val}_NNNN.h5")->required();
  app.add_flag("--chat", o.chat, "inputs are conversations (messages lists, GSM8K question/answer) -> + /loss_mask");
  app.add_option("--val-fraction", o.val_fraction, "fraction for validation, in [0, 1)");
  app.add_option("--field", o.field, "jsonl field holding the text (without --chat)");
  app.add_option("--shard-tokens", shard_tokens, "tokens per shard (shards are cut between documents)");
  app.add_option("--max-len", max_len, "--chat: truncate conversations to this many tokens (0 = no limit)");
  app.add_option("--format", o.format,
                 "--chat input format: auto (by extension / first record) | messages (OpenAI JSONL) | sharegpt "
                 "(conversations/from/value, .json array or .jsonl) | gsm8k | arc | mmlu (CSV file or folder)");
  app.add_flag("--skip-bad", o.skip_bad, "--chat: count and report malformed records instead of stopping at the first");
  app.add_option("INPUT", o.inputs, "files or folders")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    if (shard_tokens <= 0 || max_len < 0)
      throw kiln::Error("[prepare] --shard-tokens must be > 0 and --max-len >= 0", "e.g. --shard-tokens 100000000");
    o.shard_tokens = uint64_t(shard_tokens);
    o.max_len = size_t(max_len);
    auto r = kiln::data::prepare_shards(o);
    printf("[prepare] train: %zu shard(s), %llu documents, %llu tokens\n", r.train.size(),
           (unsigned long long)r.train_docs, (unsigned long long)r.train_tokens);
    printf("[prepare] val:   %zu shard(s), %llu documents, %llu tokens\n", r.val.size(),
           (unsigned long long)r.val_docs, (unsigned long long)r.val_tokens);
    if (r.skipped > 0) {
      printf("[prepare] skipped %llu malformed record(s) (--skip-bad); the first:\n", (unsigned long long)r.skipped);
      for (const auto& w : r.skipped_first) printf("  %s\n", w.c_str());
    }
    for (const auto& p : r.train) printf("  %s\n", p.c_str());
    for (const auto& p : r.val) printf("  %s\n", p.c_str());
  } catch (const kiln::Error& e) {
    fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const std::exception& e) {  // filesystem, I/O, memory: still a message, never a crash
    fprintf(stderr, "[prepare] %s\n  hint: check the paths given, their permissions and free disk space\n", e.what());
    return 1;
  }
  return 0;
}
