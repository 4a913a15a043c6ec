// read_text_file / read_json_file (see json_file.h): the file's bytes in one read, then one parse.
#include "core/json_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln {

std::string read_text_file(const std::string& path, const std::string& hint) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read " + path, hint);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text_file(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error("cannot write " + tmp, "check that the output directory exists and is writable");
    f << bytes;
    if (!f.flush()) throw Error("writing " + tmp + " failed", "check free disk space");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error("cannot rename " + tmp + " to " + path + ": " + ec.message(), "check the directory's permissions");
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + " is not valid JSON (" + e.what() + ")", "the file is truncated or damaged");
  }
}

}  // namespace kiln
