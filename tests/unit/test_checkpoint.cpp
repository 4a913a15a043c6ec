// Checkpoint directories (ckpt/checkpoint): a save is complete only with DONE; the newest
// complete one is found; a corrupted file (CRC-32 mismatch) is refused and the previous good one
// used; an interrupted save's temp dir is ignored; keep_last prunes. One process (world of 1).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/json_file.h"
#include "ckpt/checkpoint.h"
#include "model/fused_ops.h"
#include "test_util.h"

namespace fs = std::filesystem;
using kiln::ckpt::CheckpointWrite;

namespace {
CheckpointWrite sample_write(int64_t step) {
  CheckpointWrite w;
  w.step = step;
  w.model = {{"w", torch::full({4, 3}, static_cast<float>(step))}, {"b", torch::arange(5)}};
  w.optim = {{"muon.0.momentum_buffer", torch::ones({4, 3}) * 0.5}};
  w.rank_state = {{"step", step}, {"cursor", {{"batches", step * 2}, {"epoch", 0}, {"position", 0}}}};
  w.meta = {{"config", "run:\n  name: t\n"}};
  return w;
}
void flip_a_byte(const fs::path& p) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-1, std::ios::end);
  char c;
  f.get(c);
  f.seekp(-1, std::ios::end);
  f.put(static_cast<char>(c ^ 0x5a));
}
}  // namespace

TEST(Checkpoint, SaveFindLoadRoundTrip) {
  const std::string dir = kiln::test::temp_dir();
  std::string d10 = kiln::ckpt::save_checkpoint(dir, sample_write(10), 0);
  std::string d20 = kiln::ckpt::save_checkpoint(dir, sample_write(20), 0);
  EXPECT_TRUE(fs::exists(fs::path(d20) / "DONE"));
  EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(dir), d20);
  EXPECT_EQ(kiln::ckpt::verify_checkpoint(d10), "");
  auto r = kiln::ckpt::load_checkpoint(d20, 0, 1);
  EXPECT_EQ(r.step, 20);
  EXPECT_TRUE(torch::equal(r.model.at("w"), torch::full({4, 3}, 20.0f)));
  EXPECT_TRUE(torch::equal(r.model.at("b"), torch::arange(5)));
  EXPECT_TRUE(torch::equal(r.optim.at("muon.0.momentum_buffer"), torch::ones({4, 3}) * 0.5));
  EXPECT_EQ(r.rank_state["cursor"]["batches"], 40);
  EXPECT_EQ(r.meta["world_size"], 1);
  EXPECT_EQ(r.saved_world, 1);
  // Another world size reads it too (issue 14): every rank gets every optimizer tensor, and a
  // rank the writing job did not have gets rank 0's state (its cursor is remapped by the Trainer).
  auto r1 = kiln::ckpt::load_checkpoint(d20, 1, 2);
  EXPECT_EQ(r1.saved_world, 1);
  EXPECT_TRUE(torch::equal(r1.optim.at("muon.0.momentum_buffer"), torch::ones({4, 3}) * 0.5));
  EXPECT_EQ(r1.rank_state["cursor"]["batches"], 40);
  // A format-1 checkpoint (optimizer state by position): weights load, a resume is refused by name.
  auto meta = nlohmann::json::parse(kiln::read_text_file(d20 + "/meta.json"));
  meta["format_version"] = 1;
  std::ofstream(d20 + "/meta.json") << meta.dump();
  EXPECT_TRUE(torch::equal(kiln::ckpt::load_checkpoint(d20, 0, 1, kiln::ckpt::ReadScope::Weights).model.at("b"), torch::arange(5)));
  try {
    kiln::ckpt::load_checkpoint(d20, 0, 1);
    FAIL() << "expected an error";
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("keyed by position"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, WithoutDoneItDoesNotExist) {
  const std::string dir = kiln::test::temp_dir();
  std::string d10 = kiln::ckpt::save_checkpoint(dir, sample_write(10), 0);
  std::string d20 = kiln::ckpt::save_checkpoint(dir, sample_write(20), 0);
  fs::remove(fs::path(d20) / "DONE");
  fs::create_directories(fs::path(dir) / ".step_00000030.tmp");  // a save that crashed midway
  EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(dir), d10);
}

// ZeRO-1 resume (issue 19, item 17): only the optimizer tensors asked for are read from disk, and
// this rank's RNG streams come apart from the optimizer state.
TEST(Checkpoint, ReadsOnlyTheOptimizerTensorsAsked) {
  const std::string dir = kiln::test::temp_dir();
  auto w = sample_write(3);
  w.optim = {{"muon.a.momentum_buffer", torch::ones({1000})}, {"muon.b.momentum_buffer", torch::ones({10})},
             {"muon.steps", torch::tensor(int64_t{3})}};
  w.rng = {{"rng.sample", torch::arange(7, torch::kUInt8)}};
  const std::string d = kiln::ckpt::save_checkpoint(dir, w, 0);
  auto all = kiln::ckpt::load_checkpoint(d, 0, 1);
  EXPECT_EQ(all.optim.size(), 3u);
  EXPECT_EQ(all.optim.count("rng.sample"), 0u);
  EXPECT_TRUE(torch::equal(all.rng.at("rng.sample"), torch::arange(7, torch::kUInt8)));
  EXPECT_EQ(all.optim_bytes_read, 1000 * 4 + 10 * 4 + 8 + 7);
  auto mine = kiln::ckpt::load_checkpoint(d, 0, 1, kiln::ckpt::ReadScope::WithRankFiles,
                                          [](const std::string& k) { return k != "muon.a.momentum_buffer"; });
  EXPECT_EQ(mine.optim.size(), 2u);
  EXPECT_EQ(mine.optim.count("muon.a.momentum_buffer"), 0u);
  EXPECT_EQ(mine.optim_bytes_read, 10 * 4 + 8 + 7);  // the 4000 bytes of 'a' were never read
  EXPECT_GT(mine.optim_file_bytes, 4000);
  // A rank the writing job did not have gets no RNG state (it draws its own streams).
  EXPECT_TRUE(kiln::ckpt::load_checkpoint(d, 1, 2).rng.empty());
}

// Every file meta.json checksums (issue 19, item 18: the optimizer file too) is flipped in turn:
// each time the damaged checkpoint is refused naming that file, and the previous one is used.
TEST(Checkpoint, CorruptedFileIsRefusedAndThePreviousUsed) {
  // One temp dir (temp_dir() wipes it on every call): the tokenizer, a probe and one run per file.
  const std::string base = kiln::test::temp_dir();
  const std::string tok = base + "/tokenizer.json";
  std::ofstream(tok) << "{\"not\": \"read, only copied and checksummed\"}\n";
  auto with_tokenizer = [&](int64_t step) {
    auto w = sample_write(step);
    w.tokenizer_path = tok;
    return w;
  };
  std::vector<std::string> files;
  {
    const std::string probe = kiln::ckpt::save_checkpoint(base + "/probe", with_tokenizer(1), 0);
    // Held in a variable: a range-for over a temporary's items() would read a destroyed json.
    const auto meta = nlohmann::json::parse(kiln::read_text_file(probe + "/meta.json"));
    for (const auto& [name, crc] : meta.at("crc32").items()) files.push_back(name);
  }
  // The checksummed files are every file but meta.json and DONE, the optimizer's included.
  EXPECT_EQ(files, (std::vector<std::string>{"model.safetensors", "optim_rank_00000.safetensors", "state_rank_00000.json",
                                             "tokenizer.json"}));
  for (const auto& name : files) {
    SCOPED_TRACE(name);
    const std::string dir = base + "/run_" + name;
    std::string d10 = kiln::ckpt::save_checkpoint(dir, with_tokenizer(10), 0);
    std::string d20 = kiln::ckpt::save_checkpoint(dir, with_tokenizer(20), 0);
    flip_a_byte(fs::path(d20) / name);
    EXPECT_NE(kiln::ckpt::verify_checkpoint(d20).find(name + " is corrupted"), std::string::npos);
    EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(dir), d10);
    // Asked for that step directly, it is an error that names the file.
    try {
      kiln::ckpt::find_latest_checkpoint(d20);
      ADD_FAILURE() << "expected an error";
    } catch (const kiln::Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    // With the previous one damaged as well, nothing is usable: an error, never a damaged load.
    flip_a_byte(fs::path(d10) / name);
    EXPECT_THROW(kiln::ckpt::find_latest_checkpoint(dir), kiln::Error);
  }
}

TEST(Checkpoint, RunDirectoryAndKeepLast) {
  const std::string run = kiln::test::temp_dir();
  const std::string dir = run + "/ckpt";
  for (int s : {1, 2, 3, 4}) kiln::ckpt::save_checkpoint(dir, sample_write(s), 2);
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().rfind("step_", 0) == 0;
  EXPECT_EQ(n, 2);
  EXPECT_EQ(kiln::ckpt::find_latest_checkpoint(run), dir + "/step_00000004");
  EXPECT_FALSE(fs::exists(dir + "/step_00000002"));
  // Saving the same step again (after a resume) replaces it whole.
  auto w = sample_write(4);
  w.model[0].second = torch::full({4, 3}, 7.0f);
  kiln::ckpt::save_checkpoint(dir, w, 2);
  EXPECT_TRUE(torch::equal(kiln::ckpt::load_checkpoint(dir + "/step_00000004", 0, 1).model.at("w"),
                           torch::full({4, 3}, 7.0f)));
  EXPECT_THROW(kiln::ckpt::find_latest_checkpoint(run + "/nope"), kiln::Error);
}

// A checkpoint records the CPU RMSNorm kernel of its run, and loading one takes that kernel on, so
// a resume continues with the same bits; one from before the fused kernel (no key) gets at::rms_norm.
TEST(Checkpoint, RecordsAndAdoptsTheRmsNormKernel) {
  if (std::getenv("KILN_FUSED_RMSNORM")) GTEST_SKIP() << "KILN_FUSED_RMSNORM overrides the choice in this process";
  const std::string dir = kiln::test::temp_dir();
  kiln::model::set_fused_rms_norm(true);
  const std::string d = kiln::ckpt::save_checkpoint(dir, sample_write(3), 0);
  auto meta = nlohmann::json::parse(kiln::read_text_file(d + "/meta.json"));
  EXPECT_EQ(meta["rms_norm"], "fused");
  kiln::ckpt::adopt_saved_numerics(nlohmann::json{{"config", ""}}, "old/meta.json");  // a checkpoint of 075f68c
  EXPECT_FALSE(kiln::model::fused_rms_norm());
  const std::string d2 = kiln::ckpt::save_checkpoint(dir, sample_write(4), 0);  // that run's next save says so
  EXPECT_EQ(nlohmann::json::parse(kiln::read_text_file(d2 + "/meta.json"))["rms_norm"], "aten");
  kiln::ckpt::adopt_saved_numerics(meta, d + "/meta.json");
  EXPECT_TRUE(kiln::model::fused_rms_norm());
  try {
    kiln::ckpt::adopt_saved_numerics(nlohmann::json{{"rms_norm", "fast"}}, "x/meta.json");
    FAIL() << "expected an error";
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("x/meta.json: rms_norm = \"fast\""), std::string::npos) << e.what();
  }
  EXPECT_TRUE(kiln::model::fused_rms_norm());  // a refused value changes nothing
}
