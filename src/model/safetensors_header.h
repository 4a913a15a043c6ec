// The safetensors header, parsed and fully validated before any tensor memory is allocated: each
// entry's dtype, shape (element count without overflow), data_offsets against the shape and the
// file's data size. No torch here, so the fuzz test builds it alone under ASan/UBSan.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln::model {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // "F32", "BF16", ... (one of the supported names)
  size_t element_size = 0;     // bytes per element
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; // byte range within the data section
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + header length: where the data section begins in the file
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
};

// Parses the first bytes of a file of `file_size` bytes. `prefix` holds at least the 8 length
// bytes and, when the length fits, the JSON header after them. Throws kiln::Error naming `path`.
SafetensorsHeader parse_safetensors_header(const std::string& path, const std::string& prefix, uint64_t file_size);

// Reads the 8-byte length and the header from the file, then parses (one place for both callers).
SafetensorsHeader read_safetensors_header(const std::string& path);

}  // namespace kiln::model
