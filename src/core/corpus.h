// Reading training and preparation inputs in constant memory: folders expand to their files
// (sorted, recursively); *.jsonl / *.json-lines files yield one document per record (a text
// field); any other file is plain text, read in blocks cut where the caller's cut rule allows
// (the tokenizer's safe_cut: where the split pattern cannot span), so encoding block by block
// equals encoding the whole file.
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

// Files of `inputs` (files as given, folders recursively, sorted); throws naming a missing path.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);
bool is_jsonl(const std::string& path);
uint64_t file_size(const std::string& path);

// Where a block may end: the largest safe length of `text` (0: none yet, read more).
using CutRule = std::function<size_t(std::string_view text)>;

// Plain text in blocks of about block_bytes, over the byte range [begin, end) of the file, each
// ending where `cut` allows (the rest is carried into the next block).
class TextBlockReader {
 public:
  TextBlockReader(const std::string& path, uint64_t begin, uint64_t end, CutRule cut, size_t block_bytes = 1 << 20);
  // The next block (never empty) or false at the end of the range.
  bool next(std::string& block);
  uint64_t consumed() const { return pos_ - begin_; }

 private:
  std::string path_;
  std::ifstream f_;
  uint64_t begin_, pos_, end_;
  size_t block_;
  CutRule cut_;
  std::string carry_;  // bytes read past the last safe cut
};

// One JSON record per non-empty line; parse errors name file:line.
class JsonlReader {
 public:
  explicit JsonlReader(const std::string& path);
  bool next(nlohmann::json& record);
  bool next_line(std::string& line);  // raw line (for parsing on worker threads)
  size_t line_no() const { return line_no_; }
  uint64_t bytes_read() const { return bytes_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ifstream f_;
  size_t line_no_ = 0;
  uint64_t bytes_ = 0;
};

// The string field `field` of a record; throws naming file:line when it is missing or not text.
std::string text_field(const nlohmann::json& rec, const std::string& field, const std::string& path, size_t line);

// Truncate to at most max_chars Unicode characters (counting UTF-8 lead bytes); 0 = no limit.
std::string_view cap_chars(std::string_view s, uint64_t max_chars);
uint64_t count_chars(std::string_view s);

}  // namespace kiln
