// TensorBoard event files: CRC-32C, TFRecord framing, a minimal protobuf wire encoder; see tb_writer.h.
#include "train/tb_writer.h"

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace kiln::train {
namespace {

// ---- protobuf wire format (https://protobuf.dev/programming-guides/encoding/) ----
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, int field, int wire) { varint(out, (static_cast<uint64_t>(field) << 3) | wire); }
void bytes_field(std::string& out, int field, const std::string& b) {  // wire type 2
  key(out, field, 2);
  varint(out, b.size());
  out += b;
}
template <typename T>
void fixed_field(std::string& out, int field, T v) {  // wire type 1 (double) or 5 (float), little-endian
  static_assert(sizeof(T) == 8 || sizeof(T) == 4);
  key(out, field, sizeof(T) == 8 ? 1 : 5);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86/ARM hosts are little-endian, as the wire format
  out.append(b, sizeof(T));
}

// Event{wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5 (Summary)}.
std::string event(int64_t step, const std::string* summary, const std::string* file_version) {
  std::string e;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  fixed_field(e, 1, now);
  if (step != 0) {
    key(e, 2, 0);
    varint(e, static_cast<uint64_t>(step));
  }
  if (file_version) bytes_field(e, 3, *file_version);
  if (summary) bytes_field(e, 5, *summary);
  return e;
}

// The step of an encoded Event (0 when absent), or -1 when it does not parse.
int64_t event_step(const std::string& e) {
  size_t i = 0;
  auto read_varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; i < e.size() && shift < 64; shift += 7) {
      const auto b = static_cast<uint8_t>(e[i++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  int64_t step = 0;
  while (i < e.size()) {
    uint64_t k, v;
    if (!read_varint(k)) return -1;
    switch (k & 7) {
      case 0:
        if (!read_varint(v)) return -1;
        if ((k >> 3) == 2) step = static_cast<int64_t>(v);
        break;
      case 1: i += 8; break;
      case 5: i += 4; break;
      case 2:
        if (!read_varint(v)) return -1;
        i += v;
        break;
      default: return -1;
    }
  }
  return i == e.size() ? step : -1;
}

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return t;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}
std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}
uint64_t get_le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// One TFRecord: length, masked CRC of the length bytes, data, masked CRC of the data.
std::string frame(const std::string& data) {
  const std::string len = le64(data.size());
  return len + le32(mask_crc(crc32c(len.data(), len.size()))) + data + le32(mask_crc(crc32c(data.data(), data.size())));
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto& t = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::vector<std::string> read_tfrecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  for (size_t i = 0; i + 12 <= all.size();) {
    const uint64_t len = get_le(all.data() + i, 8);
    if (get_le(all.data() + i + 8, 4) != mask_crc(crc32c(all.data() + i, 8))) break;
    if (all.size() - i < 16 || len > all.size() - i - 16) break;  // torn: the data or its CRC is cut off
    const std::string data = all.substr(i + 12, len);
    if (get_le(all.data() + i + 12 + len, 4) != mask_crc(crc32c(data.data(), data.size()))) break;
    out.push_back(data);
    i += 16 + len;
  }
  return out;
}

TbWriter::TbWriter(const std::string& dir, int64_t resume_step) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  path_ = (fs::path(dir) / "events.out.tfevents.kiln").string();
  std::string kept;
  if (resume_step >= 0 && fs::exists(path_))
    for (const auto& rec : read_tfrecords(path_)) {
      const int64_t s = event_step(rec);
      if (s >= 0 && s <= resume_step) kept += frame(rec);
    }
  // Written whole to a temporary file and renamed: a kill here leaves the old file or the new one.
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (kept.empty()) {
      const std::string version = "brain.Event:2";  // what TensorBoard expects first
      out << frame(event(0, nullptr, &version));
    } else {
      out << kept;
    }
    if (!out) throw Error("cannot write " + tmp, "check free disk space and permissions of " + dir);
  }
  fs::rename(tmp, path_);
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) throw Error("cannot open " + path_ + " for appending", "check permissions of " + dir);
}

TbWriter::~TbWriter() {
  if (f_) std::fclose(f_);
}

void TbWriter::record(const std::string& ev) {
  const std::string r = frame(ev);
  if (std::fwrite(r.data(), 1, r.size(), f_) != r.size() || std::fflush(f_) != 0)
    throw Error("cannot append to " + path_, "check free disk space");
}

void TbWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  if (values.empty()) return;
  // Summary{value = 1: Value{tag = 1, simple_value = 2 (float)}}.
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string val;
    bytes_field(val, 1, tag);
    fixed_field(val, 2, static_cast<float>(v));
    bytes_field(summary, 1, val);
  }
  record(event(step, &summary, nullptr));
}

void TbWriter::text(int64_t step, const std::string& tag, const std::string& text) {
  // Value{tag = 1, metadata = 9: SummaryMetadata{plugin_data = 1: PluginData{plugin_name = 1: "text"}},
  //       tensor = 8: TensorProto{dtype = 1: DT_STRING (7), tensor_shape = 2: {} (a scalar), string_val = 8}}.
  std::string plugin, metadata, tensor, val, summary;
  bytes_field(plugin, 1, "text");
  bytes_field(metadata, 1, plugin);
  key(tensor, 1, 0);
  varint(tensor, 7);
  bytes_field(tensor, 2, "");
  bytes_field(tensor, 8, text);
  bytes_field(val, 1, tag);
  bytes_field(val, 9, metadata);
  bytes_field(val, 8, tensor);
  bytes_field(summary, 1, val);
  record(event(step, &summary, nullptr));
}

}  // namespace kiln::train
