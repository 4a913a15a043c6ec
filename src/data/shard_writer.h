// Writes one HDF5 token shard (schema in shard.h) incrementally: tokens are appended to
// extendible 1 MiB-chunked datasets as they come, so memory stays constant however large the
// shard. The file is written under "<path>.tmp" and renamed only by finish(): a crash never
// leaves a half-written shard under a final name.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::data {

struct ShardMeta {
  uint32_t vocab_size = 0;
  uint32_t bos_id = 0;
  std::string tokenizer_sha256;
  std::string source;                     // what the tokens came from (input files)
  std::string created_by = "kiln prepare";
};

inline constexpr int kShardFormatVersion = 1;

class ShardWriter {
 public:
  // with_loss_mask: chat shards carry /loss_mask; every append must then pass a mask.
  ShardWriter(const std::string& path, const ShardMeta& meta, bool with_loss_mask);
  ~ShardWriter();  // an unfinished shard's temporary file is removed
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Tokens of the current document (a document may be appended in several pieces).
  void append(const uint32_t* ids, size_t n, const uint8_t* mask = nullptr);
  void end_document();  // closes the current document (no-op when it is empty)
  void add_document(const std::vector<uint32_t>& ids, const std::vector<uint8_t>* mask = nullptr) {
    append(ids.data(), ids.size(), mask ? mask->data() : nullptr);
    end_document();
  }
  uint64_t num_tokens() const;
  uint64_t num_docs() const;
  // Flushes, writes the attributes, closes and renames to the final path.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::data
