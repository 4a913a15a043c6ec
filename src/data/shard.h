// HDF5 token shards (docs/architecture.md, "The files kiln writes"): /tokens (uint16 or uint32), /doc_offsets (uint64,
// docs+1), optional /loss_mask (uint8), and root attributes format, format_version, vocab_size,
// bos_id, tokenizer_sha256, num_tokens, num_docs, source, created_by. No torch here: kiln_core.
// Debian's HDF5 is not thread-safe, so every HDF5 call in kiln holds hdf5_mutex().
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::data {

std::mutex& hdf5_mutex();

struct ShardInfo {
  std::string path;
  uint64_t num_tokens = 0;
  uint64_t num_docs = 0;
  uint32_t vocab_size = 0;
  uint32_t bos_id = 0;
  std::string tokenizer_sha256;
  bool has_loss_mask = false;
};

class ShardReader {
 public:
  // Opens and checks the shard: a truncated file, missing datasets or attributes, or (when given)
  // a different tokenizer hash or vocab size throw kiln::Error naming the file.
  explicit ShardReader(const std::string& path, const std::string& expect_tokenizer_sha256 = "",
                       int64_t expect_vocab_size = -1);
  ~ShardReader();
  ShardReader(ShardReader&&) noexcept;
  ShardReader& operator=(ShardReader&&) noexcept;

  const ShardInfo& info() const;
  // tokens[start, start+count) widened to uint32.
  void read_tokens(uint64_t start, uint64_t count, uint32_t* out) const;
  // loss_mask[start, start+count); throws if the shard has none.
  void read_loss_mask(uint64_t start, uint64_t count, uint8_t* out) const;
  std::vector<uint64_t> doc_offsets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sorted shard paths from a directory (all *.h5 in it) or a glob ("data/x/train_*.h5").
// Throws kiln::Error naming the pattern when nothing matches.
std::vector<std::string> list_shards(const std::string& dir_or_glob);

}  // namespace kiln::data
