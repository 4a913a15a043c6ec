// Reading JSON files kiln wrote (checkpoint meta.json, rank state): a file that does not parse, a
// missing key or a value of the wrong type is a kiln::Error naming the file and the key, never
// nlohmann's own exception (which would surface as "internal error").
#pragma once
#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace kiln {

// The whole file's bytes; throws kiln::Error naming it (with `hint`) when it cannot be read.
std::string read_text_file(const std::string& path,
                           const std::string& hint = "check that the file exists and is readable");

// Writes `bytes` to path.tmp, then renames it over `path` (readers never see half a file);
// throws kiln::Error naming the file when it cannot be written.
void write_text_file(const std::string& path, const std::string& bytes);

// Parses the whole file; throws kiln::Error naming it when unreadable or not JSON.
nlohmann::json read_json_file(const std::string& path);

// j[key] as T; throws kiln::Error naming `file` and `key` when absent or of another type.
template <class T>
T json_get(const nlohmann::json& j, const std::string& key, const std::string& file) {
  if (!j.is_object() || !j.contains(key))
    throw Error(file + ": key '" + key + "' is missing", "the file is damaged or from another tool or version");
  const auto& v = j.at(key);
  auto wrong = [&] {
    return Error(file + ": key '" + key + "' has the wrong type or range (" + v.dump().substr(0, 80) + ")",
                 "the file is damaged or from another tool or version");
  };
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // Integers only, and in range: nlohmann would convert 1e300 to int (undefined behaviour).
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > uint64_t(std::numeric_limits<T>::max())) throw wrong();
    } else if (v.is_number_integer()) {
      const int64_t x = v.get<int64_t>();
      if (x < int64_t(std::numeric_limits<T>::min()) ||
          (x > 0 && uint64_t(x) > uint64_t(std::numeric_limits<T>::max())))
        throw wrong();
    } else {
      throw wrong();
    }
  }
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw wrong();
  }
}

}  // namespace kiln
