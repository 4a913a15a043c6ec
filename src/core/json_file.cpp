// read_text_file / read_json_file (see json_file.h): the file's bytes in one read, then one parse.
#include "core/json_file.h"

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

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + " is not valid JSON (" + e.what() + ")", "the file is truncated or damaged");
  }
}

}  // namespace kiln
