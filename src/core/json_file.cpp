// read_json_file (see json_file.h): the file's bytes in one read, then one parse.
#include "core/json_file.h"

#include <fstream>
#include <sstream>

namespace kiln {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read " + path, "check that the file exists and is readable");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + " is not valid JSON (" + e.what() + ")", "the file is truncated or damaged");
  }
}

}  // namespace kiln
