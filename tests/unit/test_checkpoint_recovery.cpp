// Checkpoint holes of issue 11: a leftover .step_N.old (crash between the two renames) is
// repaired instead of blocking every later save of step N (hole 3); resuming an older step moves
// the newer ones aside (hole 2); meta.json without crc32 or format_version, or with a newer
// format, is refused instead of passing vacuously (hole 5). One process (world of 1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "ckpt/checkpoint.h"
#include "test_util.h"
#include "core/remove_tree.h"

namespace fs = std::filesystem;
using kiln::ckpt::CheckpointWrite;

namespace {
CheckpointWrite write_at(int64_t step, float value) {
  CheckpointWrite w;
  w.step = step;
  w.model = {{"w", torch::full({3, 2}, value)}};
  w.optim = {{"muon.lr", torch::tensor(0.5, torch::kDouble)}};
  w.rank_state = {{"step", step}, {"cursor", {{"batches", step}, {"epoch", 0}, {"position", 0}}}};
  w.meta = {{"config", "run:\n  name: t\n"}};
  return w;
}
float w_of(const std::string& step_dir) {
  return kiln::ckpt::load_checkpoint(step_dir, 0, 1).model.at("w")[0][0].item<float>();
}
void edit_meta(const fs::path& step_dir, const std::function<void(nlohmann::json&)>& f) {
  nlohmann::json m = nlohmann::json::parse(std::ifstream(step_dir / "meta.json"));
  f(m);
  std::ofstream(step_dir / "meta.json") << m.dump(2);
}
}  // namespace

TEST(CheckpointRecovery, LeftoverOldIsRestoredAndDoesNotBlockTheNextSave) {
  const fs::path dir = kiln::test::temp_dir();
  const std::string d5 = kiln::ckpt::save_checkpoint(dir, write_at(5, 1.0f), 0);
  // A crash between the renames of a re-save of step 5 with an incomplete new copy: only
  // .step_00000005.old and an unfinished .tmp remain.
  fs::rename(d5, dir / ".step_00000005.old");
  fs::create_directories(dir / ".step_00000005.tmp");
  EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(dir.string()), d5);  // the old copy came back
  EXPECT_FALSE(fs::exists(dir / ".step_00000005.old"));
  EXPECT_EQ(w_of(d5), 1.0f);
  // And a save of step 5 now succeeds (before the fix it failed on rename onto .old).
  fs::rename(d5, dir / ".step_00000005.old");
  const std::string again = kiln::ckpt::save_checkpoint(dir, write_at(5, 2.0f), 0);
  EXPECT_EQ(w_of(again), 2.0f);
  EXPECT_FALSE(fs::exists(dir / ".step_00000005.old"));
}

TEST(CheckpointRecovery, CompleteNewCopyWinsOverTheOld) {
  const fs::path dir = kiln::test::temp_dir();
  const std::string d5 = kiln::ckpt::save_checkpoint(dir, write_at(5, 1.0f), 0);
  const fs::path other = dir.string() + "_new";
  const std::string n5 = kiln::ckpt::save_checkpoint(other.string(), write_at(5, 3.0f), 0);
  fs::rename(d5, dir / ".step_00000005.old");
  fs::rename(n5, dir / ".step_00000005.tmp");  // complete, with DONE, not yet renamed
  kiln::ckpt::recover_checkpoint_dir(dir.string());
  EXPECT_EQ(w_of(d5), 3.0f);
  EXPECT_FALSE(fs::exists(dir / ".step_00000005.old"));
  EXPECT_FALSE(fs::exists(dir / ".step_00000005.tmp"));
  kiln::remove_tree(other);
}

TEST(CheckpointRecovery, ResumingAnOlderStepMovesNewerOnesAside) {
  const fs::path dir = kiln::test::temp_dir();
  for (int64_t s : {10, 20, 30}) kiln::ckpt::save_checkpoint(dir, write_at(s, float(s)), 0);
  const std::string aside = kiln::ckpt::set_aside_newer_steps(dir.string(), 10);
  ASSERT_EQ(fs::path(aside).filename(), "abandoned_after_step_00000010");
  EXPECT_TRUE(fs::exists(fs::path(aside) / "step_00000020" / "DONE"));
  EXPECT_TRUE(fs::exists(fs::path(aside) / "step_00000030" / "DONE"));
  // The resumed timeline goes on: a requeued --resume DIR finds step 10, not the abandoned 30,
  // and keep_last=1 prunes only this timeline's checkpoints.
  EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(dir.string()), (dir / "step_00000010").string());
  kiln::ckpt::save_checkpoint(dir, write_at(11, 11.0f), 1);
  EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(dir.string()), (dir / "step_00000011").string());
  EXPECT_FALSE(fs::exists(dir / "step_00000010"));
  EXPECT_TRUE(fs::exists(fs::path(aside) / "step_00000030" / "DONE"));
  // Nothing newer: nothing moves; a second fork gets its own directory.
  EXPECT_EQ(kiln::ckpt::set_aside_newer_steps(dir.string(), 11), "");
  kiln::ckpt::save_checkpoint(dir, write_at(40, 40.0f), 0);
  kiln::ckpt::save_checkpoint(dir, write_at(10, 10.0f), 0);
  EXPECT_EQ(fs::path(kiln::ckpt::set_aside_newer_steps(dir.string(), 10)).filename(), "abandoned_after_step_00000010_2");
}

TEST(CheckpointRecovery, MissingChecksumsOrFormatVersionAreRefused) {
  const fs::path dir = kiln::test::temp_dir();
  const fs::path d = kiln::ckpt::save_checkpoint(dir, write_at(7, 7.0f), 0);
  EXPECT_EQ(kiln::ckpt::verify_checkpoint(d.string()), "");
  edit_meta(d, [](nlohmann::json& m) { m.erase("crc32"); });
  EXPECT_NE(kiln::ckpt::verify_checkpoint(d.string()).find("no crc32 checksums"), std::string::npos);
  EXPECT_THROW(kiln::ckpt::find_latest_checkpoint(dir.string()), kiln::Error);
  edit_meta(d, [](nlohmann::json& m) { m["crc32"] = nlohmann::json::object(); });
  EXPECT_NE(kiln::ckpt::verify_checkpoint(d.string()).find("no crc32 checksums"), std::string::npos);

  const fs::path e = kiln::ckpt::save_checkpoint(dir, write_at(8, 8.0f), 0);
  edit_meta(e, [](nlohmann::json& m) { m.erase("format_version"); });
  EXPECT_NE(kiln::ckpt::verify_checkpoint(e.string()).find("has no format_version"), std::string::npos);
  edit_meta(e, [](nlohmann::json& m) { m["format_version"] = 3; });
  EXPECT_NE(kiln::ckpt::verify_checkpoint(e.string()).find("format_version 3 is newer than this kiln reads (2)"),
            std::string::npos);
  try {
    kiln::ckpt::load_checkpoint(e.string(), 0, 1);
    FAIL() << "a newer format loaded";
  } catch (const kiln::Error& err) {
    EXPECT_NE(std::string(err.what()).find("update kiln"), std::string::npos) << err.what();
  }
}

TEST(CheckpointRecovery, InterruptedPruneLeavesNoHalfStep) {
  const fs::path dir = kiln::test::temp_dir();
  kiln::ckpt::save_checkpoint(dir, write_at(1, 1.0f), 0);
  const fs::path d2 = kiln::ckpt::save_checkpoint(dir, write_at(2, 2.0f), 0);
  // What a crash in the middle of pruning step 1 leaves: a renamed, half-deleted directory.
  fs::rename(dir / "step_00000001", dir / ".step_00000001.prune");
  fs::remove(dir / ".step_00000001.prune" / "model.safetensors");
  EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(dir.string()), d2.string());
  EXPECT_FALSE(fs::exists(dir / ".step_00000001.prune"));
}

// A crash (KILN_FAULT -> _exit) at every point of the save protocol, in a forked child: the
// newest complete checkpoint always loads afterwards and the next save works. Step 3 exists
// already so that the re-save goes through both renames.
TEST(CheckpointFaults, EveryPointOfTheSaveLeavesTheNewestCompleteLoadable) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // point -> value of the checkpoint find_latest must return (the step-3 save is value 3; the
  // step-3 checkpoint it replaces is 30; step 2 is 2)
  const std::vector<std::pair<std::string, float>> points{{"after_tensors", 30.0f}, {"before_fsync", 30.0f},
                                                          {"before_done", 30.0f},   {"before_rename", 30.0f},
                                                          {"between_renames", 3.0f}, {"during_pruning", 3.0f}};
  // The death-test child is a new process (another pid, so another temp_dir()): both must use
  // the parent's directories, passed down in the environment.
  if (!std::getenv("KILN_FAULT_TEST_DIR")) setenv("KILN_FAULT_TEST_DIR", kiln::test::temp_dir().c_str(), 1);
  const std::string base = std::getenv("KILN_FAULT_TEST_DIR");
  for (const auto& [point, want] : points) {
    SCOPED_TRACE(point);
    // The death-test child re-runs this body from the start with KILN_FAULT inherited: only the
    // EXPECT_EXIT below may see it.
    unsetenv("KILN_FAULT");
    const fs::path dir = base + "_" + point;
    kiln::remove_tree(dir);
    for (int64_t s : {1, 2}) kiln::ckpt::save_checkpoint(dir, write_at(s, float(s)), 3);
    kiln::ckpt::save_checkpoint(dir, write_at(3, 30.0f), 3);
    setenv("KILN_FAULT", (point + "@3").c_str(), 1);
    // keep_last=2 so that the re-save prunes step 1.
    EXPECT_EXIT(kiln::ckpt::save_checkpoint(dir, write_at(3, 3.0f), 2), ::testing::ExitedWithCode(86), point);
    unsetenv("KILN_FAULT");
    const std::string latest = kiln::ckpt::find_latest_checkpoint(dir.string());
    EXPECT_EQ(fs::path(latest).filename(), "step_00000003");
    EXPECT_EQ(w_of(latest), want);
    kiln::ckpt::save_checkpoint(dir, write_at(4, 4.0f), 2);
    EXPECT_EQ(w_of(kiln::ckpt::find_latest_checkpoint(dir.string())), 4.0f);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"step_00000003", "step_00000004"}));
    kiln::remove_tree(dir);
  }
}
