// A prepared dataset directory as one unit: ./prepare writes its shards aside (a staging folder
// inside the output), swaps them in only when every shard is written, and marks the result
// complete with a manifest; readers refuse a directory whose swap was interrupted.
#pragma once
#include <string>
#include <vector>

namespace kiln::data {

inline constexpr const char* kDatasetManifest = "kiln_dataset.json";  // written last: complete
inline constexpr const char* kDatasetIncomplete = "INCOMPLETE";       // present during the swap

class DatasetStaging {
 public:
  // Creates `output` and an empty staging folder in it (a leftover from a killed run is removed).
  explicit DatasetStaging(const std::string& output);
  ~DatasetStaging();  // without commit(): the staging folder goes, the old dataset stays as it was
  DatasetStaging(const DatasetStaging&) = delete;
  DatasetStaging& operator=(const DatasetStaging&) = delete;
  const std::string& dir() const { return staging_; }
  // Replaces the old {train,val}_NNNN.h5 of `output` with the staged ones and writes the manifest
  // (shard names and token counts, tokenizer hash). Returns each staged path's final path.
  std::vector<std::string> commit(const std::vector<std::string>& staged, const std::string& tokenizer_sha256);

 private:
  std::string output_, staging_;
  bool committed_ = false;
};

// Throws kiln::Error naming `dir` when an interrupted ./prepare left it half swapped (INCOMPLETE),
// or its manifest lists a shard that is missing or lacks one of `shards` (paths inside `dir`).
// A directory without a manifest (shards written by other tools) is accepted.
void check_dataset_complete(const std::string& dir, const std::vector<std::string>& shards);

}  // namespace kiln::data
