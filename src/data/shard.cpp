// HDF5 shard reader (see shard.h): opens and checks every required dataset and attribute up
// front, so a bad shard fails at open with the file named, never mid-training. Reads convert in
// HDF5 itself (uint16 on disk -> uint32 in memory), each under hdf5_mutex().
#include "data/shard.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "data/shard_dataset.h"
#include "data/shard_h5.h"
#include "data/shard_writer.h"

namespace kiln::data {
using h5::Hid;

std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

struct ShardReader::Impl {
  ShardInfo info;
  Hid file, tokens, mask;

  [[noreturn]] void bad(const std::string& what, const std::string& hint = "") const {
    throw Error("[data] shard " + info.path + ": " + what,
                hint.empty() ? "rewrite it with ./prepare (the file may be truncated or from another tool)" : hint);
  }
  void read_1d(hid_t ds, hid_t mtype, uint64_t start, uint64_t count, void* out, const char* name) const {
    if (start + count > info.num_tokens || start + count < start)
      bad(std::string("read of ") + name + " [" + std::to_string(start) + ", +" + std::to_string(count) +
          ") is past its end (" + std::to_string(info.num_tokens) + " tokens)");
    if (count == 0) return;
    std::lock_guard<std::mutex> g(hdf5_mutex());
    hsize_t s = start, c = count;
    Hid fs(H5Dget_space(ds), H5Sclose);
    H5Sselect_hyperslab(fs.get(), H5S_SELECT_SET, &s, nullptr, &c, nullptr);
    Hid ms(H5Screate_simple(1, &c, nullptr), H5Sclose);
    if (H5Dread(ds, mtype, ms.get(), fs.get(), H5P_DEFAULT, out) < 0)
      bad(std::string("reading /") + name + " failed (truncated or corrupt file)");
  }
};

namespace {
hsize_t length_of(hid_t ds) {
  Hid sp(H5Dget_space(ds), H5Sclose);
  if (H5Sget_simple_extent_ndims(sp.get()) != 1) return hsize_t(-1);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp.get(), &n, nullptr);
  return n;
}
}  // namespace

ShardReader::ShardReader(const std::string& path, const std::string& expect_sha, int64_t expect_vocab)
    : impl_(new Impl) {
  auto& m = *impl_;
  m.info.path = path;
  if (!std::filesystem::is_regular_file(path))
    throw Error("[data] shard not found: " + path, "run ./prepare to write shards, or fix data.train / data.val");
  std::lock_guard<std::mutex> g(hdf5_mutex());
  h5::quiet();
  m.file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!m.file.ok()) m.bad("cannot open it as HDF5 (truncated, or not an HDF5 file)");
  hid_t f = m.file.get();
  auto format = h5::read_attr_str(f, "format");
  if (!format || *format != "kiln.tokens") m.bad("attribute 'format' is missing or not \"kiln.tokens\"");
  auto version = h5::read_attr_u64(f, "format_version");
  if (!version || *version != uint64_t(kShardFormatVersion))
    m.bad("attribute 'format_version' is missing or not " + std::to_string(kShardFormatVersion));
  const char* nums[] = {"vocab_size", "bos_id", "num_tokens", "num_docs"};
  uint64_t v[4];
  for (int i = 0; i < 4; ++i) {
    auto a = h5::read_attr_u64(f, nums[i]);
    if (!a) m.bad(std::string("attribute '") + nums[i] + "' is missing");
    v[i] = *a;
  }
  for (const char* s : {"tokenizer_sha256", "source", "created_by"})
    if (!h5::read_attr_str(f, s)) m.bad(std::string("attribute '") + s + "' is missing");
  if (v[0] == 0 || v[0] > UINT32_MAX || v[1] >= v[0])
    m.bad("attributes vocab_size " + std::to_string(v[0]) + " / bos_id " + std::to_string(v[1]) +
          " are out of range (need 0 < bos_id + 1 <= vocab_size < 2^32)");
  m.info.vocab_size = uint32_t(v[0]);
  m.info.bos_id = uint32_t(v[1]);
  m.info.num_tokens = v[2];
  m.info.num_docs = v[3];
  m.info.tokenizer_sha256 = *h5::read_attr_str(f, "tokenizer_sha256");
  for (const char* d : {"tokens", "doc_offsets"})
    if (H5Lexists(f, d, H5P_DEFAULT) <= 0) m.bad(std::string("dataset /") + d + " is missing");
  m.tokens = Hid(H5Dopen2(f, "tokens", H5P_DEFAULT), H5Dclose);
  Hid offs(H5Dopen2(f, "doc_offsets", H5P_DEFAULT), H5Dclose);
  if (!m.tokens.ok() || !offs.ok()) m.bad("cannot open /tokens or /doc_offsets");
  Hid type(H5Dget_type(m.tokens.get()), H5Tclose);
  size_t tsize = H5Tget_size(type.get());
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_sign(type.get()) != H5T_SGN_NONE || (tsize != 2 && tsize != 4))
    m.bad("/tokens is not uint16 or uint32");
  if (length_of(m.tokens.get()) != m.info.num_tokens)
    m.bad("/tokens has " + std::to_string(length_of(m.tokens.get())) + " elements, attribute num_tokens says " +
          std::to_string(m.info.num_tokens));
  if (m.info.num_docs == UINT64_MAX || length_of(offs.get()) != m.info.num_docs + 1) m.bad("/doc_offsets length is not num_docs + 1");
  if (H5Lexists(f, "loss_mask", H5P_DEFAULT) > 0) {
    m.mask = Hid(H5Dopen2(f, "loss_mask", H5P_DEFAULT), H5Dclose);
    if (!m.mask.ok() || length_of(m.mask.get()) != m.info.num_tokens) m.bad("/loss_mask length is not num_tokens");
    m.info.has_loss_mask = true;
  }
  if (expect_vocab >= 0 && m.info.vocab_size != uint64_t(expect_vocab))
    m.bad("vocab_size is " + std::to_string(m.info.vocab_size) + " but the run's tokenizer has " +
              std::to_string(expect_vocab),
          "re-run ./prepare with the run's tokenizer, or point data.tokenizer at the one the shards were made with");
  if (!expect_sha.empty() && m.info.tokenizer_sha256 != expect_sha)
    m.bad("tokenizer_sha256 is " + m.info.tokenizer_sha256 + " but the run's tokenizer is " + expect_sha,
          "the shard was made with a different tokenizer: re-run ./prepare with the run's tokenizer");
}

ShardReader::~ShardReader() {
  if (!impl_) return;
  std::lock_guard<std::mutex> g(hdf5_mutex());
  impl_->tokens.reset();
  impl_->mask.reset();
  impl_->file.reset();
}
ShardReader::ShardReader(ShardReader&&) noexcept = default;
ShardReader& ShardReader::operator=(ShardReader&& o) noexcept {
  if (this != &o) {
    { std::lock_guard<std::mutex> g(hdf5_mutex()); impl_.reset(); }
    impl_ = std::move(o.impl_);
  }
  return *this;
}

const ShardInfo& ShardReader::info() const { return impl_->info; }

void ShardReader::read_tokens(uint64_t start, uint64_t count, uint32_t* out) const {
  impl_->read_1d(impl_->tokens.get(), H5T_NATIVE_UINT32, start, count, out, "tokens");
  // Every id must index the embedding: checked here, per chunk as read (one max over the chunk),
  // so a corrupt shard names its file and offset instead of a device assert deep in the model.
  uint32_t mx = 0;
  for (uint64_t i = 0; i < count; ++i) mx = std::max(mx, out[i]);
  if (count > 0 && mx >= impl_->info.vocab_size) {
    uint64_t at = 0;
    while (out[at] < impl_->info.vocab_size) ++at;
    impl_->bad("token id " + std::to_string(out[at]) + " at offset " + std::to_string(start + at) +
               " of /tokens is not below vocab_size " + std::to_string(impl_->info.vocab_size),
               "the shard is corrupt or was written for another tokenizer: re-run ./prepare");
  }
}

void ShardReader::read_loss_mask(uint64_t start, uint64_t count, uint8_t* out) const {
  if (!impl_->info.has_loss_mask) impl_->bad("it has no /loss_mask (not a chat shard)", "prepare chat data with ./prepare --chat");
  impl_->read_1d(impl_->mask.get(), H5T_NATIVE_UINT8, start, count, out, "loss_mask");
}

std::vector<uint64_t> ShardReader::doc_offsets() const {
  std::vector<uint64_t> out(impl_->info.num_docs + 1);
  std::lock_guard<std::mutex> g(hdf5_mutex());
  Hid ds(H5Dopen2(impl_->file.get(), "doc_offsets", H5P_DEFAULT), H5Dclose);
  if (!ds.ok() || H5Dread(ds.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    impl_->bad("reading /doc_offsets failed (truncated or corrupt file)");
  // Readers index /tokens with these: they must run from 0 to num_tokens without going back.
  for (size_t i = 0; i < out.size(); ++i)
    if ((i == 0 && out[0] != 0) || (i > 0 && out[i] < out[i - 1]) || out[i] > impl_->info.num_tokens)
      impl_->bad("/doc_offsets[" + std::to_string(i) + "] = " + std::to_string(out[i]) +
                 " is out of order or past num_tokens " + std::to_string(impl_->info.num_tokens));
  if (out.back() != impl_->info.num_tokens)
    impl_->bad("/doc_offsets ends at " + std::to_string(out.back()) + ", not at num_tokens " +
               std::to_string(impl_->info.num_tokens));
  return out;
}

std::vector<std::string> list_shards(const std::string& dir_or_glob) {
  std::string pattern = std::filesystem::is_directory(dir_or_glob) ? dir_or_glob + "/*.h5" : dir_or_glob;
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.begin(), out.end());
  if (out.empty())
    throw Error("[data] no shards match " + pattern, "write them with ./prepare, or fix the path (e.g. data/name/train_*.h5)");
  std::map<std::string, std::vector<std::string>> by_dir;  // a glob may span folders
  for (const auto& p : out) by_dir[std::filesystem::path(p).parent_path().string()].push_back(p);
  for (const auto& [dir, shards] : by_dir) check_dataset_complete(dir.empty() ? "." : dir, shards);
  return out;
}

}  // namespace kiln::data
