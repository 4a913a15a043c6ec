// Input files for ./tokenizer train and ./prepare: expansion of folders, block reading of plain
// text at pattern-safe cuts, and JSONL records. Errors name the file (and line) and say what to do.
#include "core/corpus.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace kiln {
namespace fs = std::filesystem;

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      std::vector<std::string> files;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      if (files.empty()) throw Error("[data] input folder " + in + " holds no files", "point at text or jsonl files");
      out.insert(out.end(), files.begin(), files.end());
    } else if (fs::is_regular_file(in)) {
      out.push_back(in);
    } else {
      throw Error("[data] input not found: " + in, "give existing text/jsonl files or folders");
    }
  }
  return out;
}

bool is_jsonl(const std::string& path) {
  auto ext = fs::path(path).extension().string();
  return ext == ".jsonl" || ext == ".ndjson";
}

uint64_t file_size(const std::string& path) { return fs::file_size(path); }

TextBlockReader::TextBlockReader(const std::string& path, uint64_t begin, uint64_t end, CutRule cut, size_t block_bytes)
    : path_(path), f_(path, std::ios::binary), begin_(begin), pos_(begin), end_(end), block_(block_bytes), cut_(std::move(cut)) {
  if (!f_) throw Error("[data] cannot open " + path, "check the path and its permissions");
  f_.seekg(std::streamoff(begin));
}

bool TextBlockReader::next(std::string& block) {
  block.swap(carry_);
  carry_.clear();
  uint64_t file_pos = pos_ + block.size();
  while (true) {
    size_t want = size_t(std::min<uint64_t>(block_, end_ - file_pos));
    if (want == 0) break;  // end of range: the rest is the last block
    size_t old = block.size();
    block.resize(old + want);
    f_.read(block.data() + old, std::streamsize(want));
    if (size_t(f_.gcount()) != want) throw Error("[data] short read in " + path_, "was the file changed while reading?");
    file_pos += want;
    size_t cut = cut_(block);
    if (cut > 0) {
      carry_.assign(block, cut, std::string::npos);
      block.resize(cut);
      break;
    }  // no safe cut yet (one very long line): read more
  }
  pos_ += block.size();
  return !block.empty();
}

JsonlReader::JsonlReader(const std::string& path) : path_(path), f_(path, std::ios::binary) {
  if (!f_) throw Error("[data] cannot open " + path, "check the path and its permissions");
}

bool JsonlReader::next_line(std::string& line) {
  while (std::getline(f_, line)) {
    ++line_no_;
    bytes_ += line.size() + 1;
    if (line.find_first_not_of(" \t\r") != std::string::npos) return true;
  }
  return false;
}

bool JsonlReader::next(nlohmann::json& rec) {
  std::string line;
  if (!next_line(line)) return false;
  try {
    rec = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw Error("[data] " + path_ + ":" + std::to_string(line_no_) + ": not valid JSON: " + e.what(),
                "JSONL files hold one JSON object per line");
  }
  return true;
}

std::string text_field(const nlohmann::json& rec, const std::string& field, const std::string& path, size_t line) {
  if (!rec.is_object() || !rec.contains(field) || !rec[field].is_string())
    throw Error("[data] " + path + ":" + std::to_string(line) + ": no text field '" + field + "' in this record",
                "name the field holding the text with --field");
  return rec[field].get<std::string>();
}

uint64_t count_chars(std::string_view s) {
  uint64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string_view cap_chars(std::string_view s, uint64_t max_chars) {
  if (max_chars == 0 || s.size() <= max_chars) return s;
  uint64_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && n++ == max_chars) return s.substr(0, i);
  }
  return s;
}

}  // namespace kiln
