// Cursor::from_json; see loader.h.
#include "data/loader.h"

#include "core/json_file.h"

namespace kiln::data {

Cursor Cursor::from_json(const nlohmann::json& j, const std::string& where) {
  Cursor c{json_get<int64_t>(j, "batches", where), json_get<int64_t>(j, "epoch", where),
           json_get<int64_t>(j, "position", where)};
  if (j.contains("packing")) c.packing = j.at("packing");
  return c;
}

}  // namespace kiln::data
