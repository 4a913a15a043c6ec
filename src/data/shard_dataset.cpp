// DatasetStaging and check_dataset_complete (see shard_dataset.h). The swap is: INCOMPLETE marker
// (fsynced), old manifest and shards removed, staged shards renamed in, manifest written (tmp +
// rename), marker removed. A kill at any point leaves either the old dataset whole, or a marker.
#include "data/shard_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "core/error.h"
#include "core/json_file.h"
#include "data/shard.h"
#include "core/remove_tree.h"

namespace kiln::data {
namespace fs = std::filesystem;

namespace {
void write_synced(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f.flush()) throw Error("[prepare] cannot write " + tmp.string(), "check free disk space and permissions");
  }
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) { ::fsync(fd); ::close(fd); }
  fs::rename(tmp, path);
}
bool is_shard_name(const std::string& name) {
  static const std::regex re(R"((train|val)_\d{4}\.h5(\.tmp)?)");
  return std::regex_match(name, re);
}
}  // namespace

DatasetStaging::DatasetStaging(const std::string& output) : output_(output) {
  fs::create_directories(output_);
  staging_ = (fs::path(output_) / ".prepare-staging").string();
  kiln::remove_tree(staging_);
  fs::create_directories(staging_);
}

DatasetStaging::~DatasetStaging() {
  std::error_code ec;
  if (!committed_) kiln::remove_tree(staging_, ec);
}

std::vector<std::string> DatasetStaging::commit(const std::vector<std::string>& staged, const std::string& sha) {
  const fs::path out(output_);
  write_synced(out / kDatasetIncomplete,
               "./prepare was replacing the shards of this folder and did not finish: run it again\n");
  fs::remove(out / kDatasetManifest);
  for (const auto& e : fs::directory_iterator(out))
    if (e.is_regular_file() && is_shard_name(e.path().filename().string())) {
      fs::remove(e.path());
      fprintf(stderr, "[prepare] replaced old %s\n", e.path().c_str());
    }
  nlohmann::ordered_json shards = nlohmann::ordered_json::object();
  std::vector<std::string> final_paths;
  for (const auto& p : staged) {
    const fs::path dst = out / fs::path(p).filename();
    fs::rename(p, dst);
    shards[dst.filename().string()] = ShardReader(dst.string()).info().num_tokens;
    final_paths.push_back(dst.string());
  }
  nlohmann::ordered_json m = {{"format", "kiln.dataset"}, {"format_version", 1}, {"tokenizer_sha256", sha},
                              {"shards", shards}};
  write_synced(out / kDatasetManifest, m.dump(2) + "\n");
  fs::remove(out / kDatasetIncomplete);
  kiln::remove_tree(staging_);
  committed_ = true;
  return final_paths;
}

void check_dataset_complete(const std::string& dir, const std::vector<std::string>& shards) {
  const fs::path d(dir);
  if (fs::exists(d / kDatasetIncomplete))
    throw Error("[data] " + dir + " is an incomplete dataset: ./prepare was interrupted while replacing its shards (" +
                    (d / kDatasetIncomplete).string() + " is present)",
                "run the same ./prepare command again");
  const fs::path mpath = d / kDatasetManifest;
  if (!fs::exists(mpath)) return;
  const auto m = read_json_file(mpath.string());
  const auto listed = json_get<nlohmann::json>(m, "shards", mpath.string());
  if (!listed.is_object()) throw Error("[data] " + mpath.string() + ": 'shards' is not an object", "run ./prepare again");
  for (const auto& [name, n] : listed.items())
    if (!fs::exists(d / name))
      throw Error("[data] " + dir + " is incomplete: its manifest lists " + name + " but the file is missing",
                  "copy the whole folder, or run ./prepare again");
  for (const auto& s : shards)
    if (!listed.contains(fs::path(s).filename().string()))
      throw Error("[data] " + s + " is not part of the dataset its folder's " + kDatasetManifest + " describes",
                  "remove the stray file, or run ./prepare again");
}

}  // namespace kiln::data
