// HDF5 shard writer (see shard_writer.h). Buffers ~4M tokens, then extends and writes each
// dataset with one hyperslab; tokens are narrowed to uint16 when the vocabulary allows it.
// Every HDF5 call holds hdf5_mutex() (a loader thread may be reading other shards meanwhile).
#include "data/shard_writer.h"

#include <filesystem>

#include "core/error.h"
#include "data/shard.h"
#include "data/shard_h5.h"

namespace kiln::data {
using h5::Hid;

namespace {
constexpr size_t kFlushTokens = 4u << 20;

Hid make_dataset(hid_t file, const char* name, hid_t type, size_t elem_bytes) {
  hsize_t dims = 0, maxdims = H5S_UNLIMITED, chunk = (1u << 20) / elem_bytes;
  Hid space(H5Screate_simple(1, &dims, &maxdims), H5Sclose);
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_chunk(dcpl.get(), 1, &chunk);
  return Hid(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
}

// Appends n elements of memory type mtype to a 1-D extendible dataset.
bool append_1d(hid_t ds, hid_t mtype, const void* data, hsize_t n) {
  if (n == 0) return true;
  Hid fs0(H5Dget_space(ds), H5Sclose);
  hsize_t old = 0;
  H5Sget_simple_extent_dims(fs0.get(), &old, nullptr);
  hsize_t total = old + n;
  if (H5Dset_extent(ds, &total) < 0) return false;
  Hid fs(H5Dget_space(ds), H5Sclose);
  H5Sselect_hyperslab(fs.get(), H5S_SELECT_SET, &old, nullptr, &n, nullptr);
  Hid ms(H5Screate_simple(1, &n, nullptr), H5Sclose);
  return H5Dwrite(ds, mtype, ms.get(), fs.get(), H5P_DEFAULT, data) >= 0;
}
}  // namespace

struct ShardWriter::Impl {
  std::string path, tmp;
  ShardMeta meta;
  bool with_mask = false, narrow = false, finished = false;
  Hid file, tokens, offsets, mask;
  std::vector<uint32_t> buf;
  std::vector<uint8_t> mbuf;
  std::vector<uint64_t> offs{0};  // pending doc offsets (the leading 0 included once)
  uint64_t written = 0, docs = 0, doc_start = 0;

  [[noreturn]] void fail(const std::string& what) {
    throw Error("[data] writing shard " + tmp + " failed: " + what, "check free disk space and permissions");
  }
  void flush() {
    std::lock_guard<std::mutex> g(hdf5_mutex());
    bool ok = true;
    if (narrow) {
      std::vector<uint16_t> n16(buf.begin(), buf.end());
      ok = append_1d(tokens.get(), H5T_NATIVE_UINT16, n16.data(), n16.size());
    } else {
      ok = append_1d(tokens.get(), H5T_NATIVE_UINT32, buf.data(), buf.size());
    }
    if (with_mask) ok = ok && append_1d(mask.get(), H5T_NATIVE_UINT8, mbuf.data(), mbuf.size());
    ok = ok && append_1d(offsets.get(), H5T_NATIVE_UINT64, offs.data(), offs.size());
    if (!ok) fail("HDF5 write error");
    written += buf.size();
    buf.clear();
    mbuf.clear();
    offs.clear();
  }
};

ShardWriter::ShardWriter(const std::string& path, const ShardMeta& meta, bool with_loss_mask) : impl_(new Impl) {
  auto& m = *impl_;
  m.path = path;
  m.tmp = path + ".tmp";
  m.meta = meta;
  m.with_mask = with_loss_mask;
  m.narrow = meta.vocab_size <= 65536;
  std::lock_guard<std::mutex> g(hdf5_mutex());
  h5::quiet();
  m.file = Hid(H5Fcreate(m.tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!m.file.ok()) throw Error("[data] cannot create shard " + m.tmp, "check that the output directory exists and is writable");
  m.tokens = make_dataset(m.file.get(), "tokens", m.narrow ? H5T_STD_U16LE : H5T_STD_U32LE, m.narrow ? 2 : 4);
  m.offsets = make_dataset(m.file.get(), "doc_offsets", H5T_STD_U64LE, 8);
  if (m.with_mask) m.mask = make_dataset(m.file.get(), "loss_mask", H5T_STD_U8LE, 1);
  if (!m.tokens.ok() || !m.offsets.ok() || (m.with_mask && !m.mask.ok())) m.fail("cannot create datasets");
}

ShardWriter::~ShardWriter() {
  if (!impl_ || impl_->finished) return;
  {
    std::lock_guard<std::mutex> g(hdf5_mutex());
    impl_->tokens.reset(); impl_->offsets.reset(); impl_->mask.reset(); impl_->file.reset();
  }
  std::error_code ec;
  std::filesystem::remove(impl_->tmp, ec);
}

void ShardWriter::append(const uint32_t* ids, size_t n, const uint8_t* mask) {
  auto& m = *impl_;
  if (m.with_mask && !mask && n) throw std::logic_error("ShardWriter: chat shard needs a loss mask");
  for (size_t i = 0; i < n; ++i)
    if (ids[i] >= m.meta.vocab_size)
      throw Error("[data] token id " + std::to_string(ids[i]) + " >= vocab size " + std::to_string(m.meta.vocab_size) +
                  " for shard " + m.path, "the tokenizer and the shard metadata disagree");
  m.buf.insert(m.buf.end(), ids, ids + n);
  if (m.with_mask) m.mbuf.insert(m.mbuf.end(), mask, mask + n);
  if (m.buf.size() >= kFlushTokens) m.flush();
}

void ShardWriter::end_document() {
  auto& m = *impl_;
  uint64_t end = m.written + m.buf.size();
  if (end == m.doc_start) return;
  m.offs.push_back(end);
  m.doc_start = end;
  ++m.docs;
}

uint64_t ShardWriter::num_tokens() const { return impl_->written + impl_->buf.size(); }
uint64_t ShardWriter::num_docs() const { return impl_->docs; }

void ShardWriter::finish() {
  auto& m = *impl_;
  end_document();
  m.flush();
  {
    std::lock_guard<std::mutex> g(hdf5_mutex());
    hid_t f = m.file.get();
    h5::write_attr_str(f, "format", "kiln.tokens");
    h5::write_attr_u64(f, "format_version", kShardFormatVersion);
    h5::write_attr_u64(f, "vocab_size", m.meta.vocab_size);
    h5::write_attr_u64(f, "bos_id", m.meta.bos_id);
    h5::write_attr_str(f, "tokenizer_sha256", m.meta.tokenizer_sha256);
    h5::write_attr_u64(f, "num_tokens", m.written);
    h5::write_attr_u64(f, "num_docs", m.docs);
    h5::write_attr_str(f, "source", m.meta.source);
    h5::write_attr_str(f, "created_by", m.meta.created_by);
    m.tokens.reset(); m.offsets.reset(); m.mask.reset();
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) m.fail("flush failed");
    m.file.reset();
  }
  std::error_code ec;
  std::filesystem::rename(m.tmp, m.path, ec);
  if (ec) throw Error("[data] cannot rename " + m.tmp + " to " + m.path + ": " + ec.message(), "check permissions");
  m.finished = true;
}

}  // namespace kiln::data
