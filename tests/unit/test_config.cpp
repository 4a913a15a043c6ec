// Config parsing (core/config): every user error names the file and the key; overrides; the
// YAML round trip; depth-derived shapes (d20 -> width 1280, 10 heads, as nanochat). CPU only.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/error.h"
#include "test_util.h"  // error_of

using kiln::Config;
using kiln::Error;
using kiln::test::error_of;

namespace {

Config load(const std::string& yaml, std::vector<std::string> ov = {}) {
  return kiln::load_config_text(yaml, "test.yaml", ov);
}

const char* kBase = R"(
run:
  name: t
model:
  depth: 4
  seq_len: 64
train:
  device_batch_size: 4
  total_batch_size: 1024
)";

}  // namespace

TEST(Config, DefaultsAndDerivedPaths) {
  Config c = load(kBase);
  EXPECT_EQ(c.run.name, "t");
  EXPECT_EQ(c.run.dir, "runs/t");
  EXPECT_EQ(c.checkpoint.dir, "runs/t/ckpt");
  EXPECT_EQ(c.model.depth, 4);
  EXPECT_DOUBLE_EQ(c.optim.matrix_lr, 0.02);
  EXPECT_EQ(kiln::grad_accum_steps(c, 1), 4);
  EXPECT_EQ(kiln::grad_accum_steps(c, 2), 2);
}

TEST(Config, RunNameDefaultsToFileStem) {
  auto dir = std::filesystem::temp_directory_path() / "kiln_cfg_test";
  std::filesystem::create_directories(dir);
  auto path = (dir / "myrun.yaml").string();
  std::ofstream(path) << "model:\n  depth: 2\n  seq_len: 8\ntrain:\n  device_batch_size: 1\n  total_batch_size: 8\n";
  Config c = kiln::load_config(path);
  EXPECT_EQ(c.run.name, "myrun");
  EXPECT_EQ(c.source, path);
}

TEST(Config, MissingFile) {
  std::string e = error_of([] { kiln::load_config("configs/missing.yaml"); });
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
  EXPECT_NE(e.find("configs/missing.yaml"), std::string::npos) << e;
}

TEST(Config, BadYamlHasLineAndColumn) {
  std::string e = error_of([] { load("model:\n  depth: [1, 2\n"); });
  EXPECT_NE(e.find("test.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
  std::string e2 = error_of([] { load("model:\n  depth: 4\n   seq_len: 3\n"); });
  EXPECT_NE(e2.find("test.yaml:3:"), std::string::npos) << e2;
}

TEST(Config, UnknownKeySuggestsNearest) {
  std::string e = error_of([] { load("model:\n  detph: 4\n"); });
  EXPECT_NE(e.find("test.yaml:2:3"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'model.detph'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'model.depth'"), std::string::npos) << e;
  std::string e2 = error_of([] { load("trian:\n  max_steps: 4\n"); });
  EXPECT_NE(e2.find("unknown section 'trian'"), std::string::npos) << e2;
  EXPECT_NE(e2.find("'train'"), std::string::npos) << e2;
}

TEST(Config, WrongType) {
  std::string e = error_of([] { load("train:\n  max_steps: oops\n"); });
  EXPECT_NE(e.find("train.max_steps"), std::string::npos) << e;
  EXPECT_NE(e.find("\"oops\""), std::string::npos) << e;
  EXPECT_NE(e.find("expected an integer"), std::string::npos) << e;
  EXPECT_NE(error_of([] { load("optim:\n  matrix_lr: fast\n"); }).find("expected a number"), std::string::npos);
  EXPECT_NE(error_of([] { load("dist:\n  zero1: maybe\n"); }).find("expected a boolean"), std::string::npos);
  EXPECT_NE(error_of([] { load("model:\n  depth: {a: 1}\n"); }).find("got a mapping"), std::string::npos);
  EXPECT_NE(error_of([] { load("run:\n  device: tpu\n"); }).find("expected one of: auto, cpu, cuda"),
            std::string::npos);
  EXPECT_NE(error_of([] { load("model:\n  depth: 2.5\n"); }).find("expected an integer"), std::string::npos);
}

TEST(Config, OutOfRange) {
  std::string e = error_of([] { load("model:\n  depth: 0\n"); });
  EXPECT_NE(e.find("model.depth"), std::string::npos) << e;
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  EXPECT_NE(error_of([] { load("optim:\n  adam_beta2: 1.5\n"); }).find("out of range"), std::string::npos);
}

TEST(Config, InconsistentBatchArithmetic) {
  std::string e = error_of([] { load(kBase, {"train.total_batch_size=1000"}); });
  EXPECT_NE(e.find("test.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("train.total_batch_size"), std::string::npos) << e;
  EXPECT_NE(e.find("train.device_batch_size"), std::string::npos) << e;
  // 1024 tokens = 4 seqs x 64 tokens x 4 micro-steps: fine on 1, 2, 4 ranks, not on 3 or 8.
  Config c = load(kBase);
  EXPECT_NO_THROW(kiln::validate_for_world(c, 4));
  std::string e3 = error_of([&] { kiln::validate_for_world(c, 3); });
  EXPECT_NE(e3.find("world"), std::string::npos) << e3;
  EXPECT_NE(error_of([&] { kiln::validate_for_world(c, 8); }), "");
  EXPECT_NE(error_of([] { load("optim:\n  warmup_ratio: 0.6\n  warmdown_ratio: 0.6\n"); }), "");
}

TEST(Config, Overrides) {
  Config c = load(kBase, {"train.max_steps=100", "optim.matrix_lr=0.05", "run.name=x", "dist.zero1=true"});
  EXPECT_EQ(c.train.max_steps, 100);
  EXPECT_DOUBLE_EQ(c.optim.matrix_lr, 0.05);
  EXPECT_EQ(c.run.name, "x");
  EXPECT_EQ(c.run.dir, "runs/x");
  EXPECT_TRUE(c.dist.zero1);
  std::string e = error_of([] { load(kBase, {"train.max_steps=oops"}); });
  EXPECT_NE(e.find("train.max_steps"), std::string::npos) << e;
  EXPECT_NE(e.find("oops"), std::string::npos) << e;
  EXPECT_NE(e.find("expected an integer"), std::string::npos) << e;
  EXPECT_NE(e.find("test.yaml"), std::string::npos) << e;
  EXPECT_NE(error_of([] { load(kBase, {"train.max_stpes=3"}); }).find("did you mean 'train.max_steps'"),
            std::string::npos);
  EXPECT_NE(error_of([] { load(kBase, {"max_steps"}); }).find("section.key=value"), std::string::npos);
  // Overrides beat the file; a later override beats an earlier one.
  EXPECT_EQ(load(kBase, {"model.depth=6", "model.depth=8"}).model.depth, 8);
}

TEST(Config, RoundTrip) {
  Config c = load(kBase, {"optim.adam_eps=1e-10", "optim.matrix_lr=0.1", "data.tokenizer=tok dir/t.json",
                          "dist.zero1=true", "train.dtype=bfloat16", "run.seed=7", "eval.every=0"});
  std::string y = kiln::to_yaml(c);
  Config d = kiln::load_config_text(y, "dump.yaml");
  EXPECT_EQ(c, d) << y;
  EXPECT_EQ(kiln::to_yaml(d), y);
  // Odd values survive too: 0.1 + 0.2 is not 0.3 and must come back bit-exact.
  Config e = load(kBase, {"optim.matrix_lr=0.30000000000000004", "data.val=", "run.name=007"});
  Config f = kiln::load_config_text(kiln::to_yaml(e), "dump.yaml");
  EXPECT_EQ(e, f);
  EXPECT_EQ(f.optim.matrix_lr, 0.1 + 0.2);
  EXPECT_EQ(f.run.name, "007");
}

TEST(Config, DepthDerivedShapes) {
  kiln::ModelConfig m;
  m.depth = 20;
  auto s = kiln::derive_shape(m);
  EXPECT_EQ(s.width, 1280);
  EXPECT_EQ(s.n_head, 10);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.n_kv_head, 10);
  m.depth = 26;
  s = kiln::derive_shape(m);
  EXPECT_EQ(s.width, 1664);
  EXPECT_EQ(s.n_head, 13);
  m.depth = 32;
  s = kiln::derive_shape(m);
  EXPECT_EQ(s.width, 2048);
  EXPECT_EQ(s.n_head, 16);
  // Explicit sizes win (nanoGPT's CPU model: 4 layers, 4 heads, 128 wide).
  m.depth = 4;
  m.width = 128;
  m.n_head = 4;
  s = kiln::derive_shape(m);
  EXPECT_EQ(s.head_dim, 32);
  m.n_head = 3;
  EXPECT_NE(error_of([&] { kiln::derive_shape(m); }).find("not divisible"), std::string::npos);
}

TEST(Config, ShippedConfigsLoad) {
  for (const char* name : {"tiny", "shakespeare_char", "d20", "d26", "d32"}) {
    std::string path = std::string(KILN_SOURCE_DIR) + "/configs/" + name + ".yaml";
    EXPECT_NO_THROW(kiln::load_config(path)) << path;
  }
  Config d20 = kiln::load_config(std::string(KILN_SOURCE_DIR) + "/configs/d20.yaml");
  EXPECT_EQ(kiln::derive_shape(d20.model).width, 1280);
  EXPECT_EQ(kiln::grad_accum_steps(d20, 8), 1);
}

TEST(Config, DescribeKeysListsEveryKey) {
  std::string d = kiln::describe_keys();
  for (const auto& k : kiln::config_keys()) EXPECT_NE(d.find(k), std::string::npos) << k;
  for (const char* k : {"run.name", "run.dir", "run.seed", "model.depth", "model.seq_len", "train.max_steps",
                        "train.device_batch_size", "train.total_batch_size", "optim.matrix_lr",
                        "optim.embedding_lr", "optim.unembedding_lr", "checkpoint.dir", "checkpoint.every",
                        "checkpoint.keep_last", "eval.every", "data.train", "data.val", "data.tokenizer"})
    EXPECT_NE(d.find(std::string("  ") + k + " "), std::string::npos) << k;
}
