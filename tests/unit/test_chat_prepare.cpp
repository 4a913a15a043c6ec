// ./prepare --chat's input formats (data/chat_sources.h) and the task-mixture config lists:
// ShareGPT (.json array and JSONL) renders like the same chat as OpenAI messages, ARC/MMLU go
// through data/tasks.h's render_mc, malformed records fail naming file:line or are counted with
// --skip-bad, and data.train accepts a list of {path, repeat} (errors name file:line:key).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "data/chat_sources.h"
#include "data/shard.h"
#include "data/shard_prepare.h"
#include "data/tasks.h"
#include "optim/optimizers.h"
#include "tok_test_util.h"

using namespace kiln;

using test::error_of;

namespace {
// Tokens of every document of a prepare run's train shards.
std::vector<std::vector<uint32_t>> docs_of(const data::PrepareResult& r) {
  std::vector<std::vector<uint32_t>> out;
  for (const auto& p : r.train) {
    data::ShardReader s(p);
    auto off = s.doc_offsets();
    std::vector<uint32_t> t(s.info().num_tokens);
    s.read_tokens(0, t.size(), t.data());
    for (size_t d = 0; d + 1 < off.size(); ++d) out.emplace_back(t.begin() + off[d], t.begin() + off[d + 1]);
  }
  return out;
}

data::PrepareResult prep(const std::string& dir, const std::string& out, std::vector<std::string> in,
                         const std::string& format = "auto", bool skip_bad = false) {
  data::PrepareOptions o;
  o.tokenizer = dir + "/tok.json", o.output = dir + "/" + out, o.inputs = std::move(in);
  o.chat = true, o.val_fraction = 0, o.progress = false, o.format = format, o.skip_bad = skip_bad;
  return data::prepare_shards(o);
}
}  // namespace

TEST(ChatPrepare, ShareGptArrayAndJsonlRenderLikeMessages) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  const std::string dir = test::temp_dir();
  test::shakespeare_512()->save(dir + "/tok.json");
  const std::string sys_turn = R"({"from": "system", "value": "Be brief."}, )";
  test::spit(dir + "/a.json", R"([{"id": "x", "conversations": [)" + sys_turn +
                                  R"({"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."},
      {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"}]}])");
  test::spit(dir + "/b.jsonl", R"({"conversations": [{"from": "user", "value": "Hi?"}, {"from": "assistant", "value": "Hello."}]})" "\n");
  test::spit(dir + "/m.jsonl",
             R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]})" "\n"
             R"({"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]})" "\n");
  EXPECT_EQ(data::detect_chat_format(dir + "/a.json", data::ChatFormat::Auto), data::ChatFormat::ShareGpt);
  EXPECT_EQ(data::detect_chat_format(dir + "/b.jsonl", data::ChatFormat::Auto), data::ChatFormat::ShareGpt);
  EXPECT_EQ(data::detect_chat_format(dir + "/m.jsonl", data::ChatFormat::Auto), data::ChatFormat::Messages);
  auto share = docs_of(prep(dir, "s", {dir + "/a.json", dir + "/b.jsonl"}));
  auto msgs = docs_of(prep(dir, "m", {dir + "/m.jsonl"}));
  ASSERT_EQ(share.size(), 2u);
  EXPECT_EQ(share, msgs);
  // The real FastChat file (ShareGPT) against its derived messages JSONL: the same tokens.
  const std::string d = test::data_dir() + "/chat/fastchat/";
  EXPECT_EQ(docs_of(prep(dir, "f1", {d + "dummy_conversation.json"})),
            docs_of(prep(dir, "f2", {d + "dummy_conversation.messages.jsonl"})));
}

TEST(ChatPrepare, ArcAndMmluAreRenderedAsMultipleChoice) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  const std::string dir = test::temp_dir();
  test::shakespeare_512()->save(dir + "/tok.json");
  auto tok = tok::Tokenizer::load(dir + "/tok.json");
  const std::string arc = test::data_dir() + "/arc/ARC-Challenge-validation.jsonl";
  const std::string mmlu = test::data_dir() + "/mmlu/dev/astronomy_dev.csv";
  EXPECT_EQ(data::detect_chat_format(arc, data::ChatFormat::Auto), data::ChatFormat::Arc);
  EXPECT_EQ(data::detect_chat_format(mmlu, data::ChatFormat::Auto), data::ChatFormat::Mmlu);
  for (auto [path, kind] : {std::pair{arc, data::TaskKind::Arc}, std::pair{mmlu, data::TaskKind::Mmlu}}) {
    auto docs = docs_of(prep(dir, kind == data::TaskKind::Arc ? "arc" : "mmlu", {path}));
    auto ex = data::read_task(kind, path);
    ASSERT_EQ(docs.size(), ex.size());
    auto want = tok::render_conversation(tok, ex[0].conv, 2048).ids;
    EXPECT_EQ(docs[0], want);
    const std::string text = tok.decode(docs[0]);
    EXPECT_NE(text.find("Respond only with the letter"), std::string::npos) << text;
    EXPECT_NE(text.find("<|assistant_start|>" + ex[0].answer + "<|assistant_end|>"), std::string::npos) << text;
  }
}

TEST(ChatPrepare, MalformedRecordsFailNamingFileLineOrAreCountedWithSkipBad) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  const std::string dir = test::temp_dir();
  test::shakespeare_512()->save(dir + "/tok.json");
  const std::string ok = R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})";
  test::spit(dir + "/c.jsonl", ok + "\n" + ok + "\n" +
                                   R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})" "\n" +
                                   ok + "\n{not json\n" + R"({"messages": [{"role": "bot", "content": "x"}]})" "\n");
  std::string e = error_of([&] { prep(dir, "x", {dir + "/c.jsonl"}); });
  EXPECT_NE(e.find(dir + "/c.jsonl:3"), std::string::npos) << e;
  EXPECT_NE(e.find("alternate"), std::string::npos) << e;
  EXPECT_NE(e.find("--skip-bad"), std::string::npos) << e;
  auto r = prep(dir, "y", {dir + "/c.jsonl"}, "auto", true);
  EXPECT_EQ(r.train_docs, 3u);
  EXPECT_EQ(r.skipped, 3u);
  ASSERT_EQ(r.skipped_first.size(), 3u);
  EXPECT_NE(r.skipped_first[0].find("c.jsonl:3"), std::string::npos);
  EXPECT_NE(r.skipped_first[1].find("c.jsonl:5"), std::string::npos);
  EXPECT_NE(r.skipped_first[2].find("c.jsonl:6"), std::string::npos);
  // ShareGPT: an unknown speaker names the record.
  test::spit(dir + "/s.json", R"([{"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}])");
  e = error_of([&] { prep(dir, "z", {dir + "/s.json"}); });
  EXPECT_NE(e.find(dir + "/s.json:record 1"), std::string::npos) << e;
  EXPECT_NE(e.find("robot"), std::string::npos) << e;
  e = error_of([&] { prep(dir, "w", {dir + "/c.jsonl"}, "parquet"); });
  EXPECT_NE(e.find("--format parquet"), std::string::npos) << e;
}

TEST(ChatConfig, DataListsWithRepeatsAndTheSingleStringForm) {
  const char* base = "model: {depth: 2, seq_len: 8}\ntrain: {device_batch_size: 1, total_batch_size: 8}\n";
  Config c = load_config_text(std::string(base) + "data:\n  train: d/train_*.h5\n", "t.yaml");
  ASSERT_EQ(c.data.train.size(), 1u);
  EXPECT_EQ(c.data.train[0].path, "d/train_*.h5");
  EXPECT_EQ(c.data.train[0].repeat, 1);
  Config m = load_config_text(std::string(base) + "data:\n  train:\n    - {path: a/*.h5, repeat: 2}\n    - b/*.h5\n", "t.yaml");
  ASSERT_EQ(m.data.train.size(), 2u);
  EXPECT_EQ(m.data.train[0].repeat, 2);
  EXPECT_EQ(m.data.train[1].path, "b/*.h5");
  // The YAML round trip keeps both forms (the single string stays a string: pretraining configs).
  EXPECT_EQ(load_config_text(to_yaml(m), "r.yaml"), m);
  EXPECT_NE(to_yaml(c).find("train: \"d/train_*.h5\""), std::string::npos) << to_yaml(c);
  // Overrides: a path, or a YAML flow list.
  Config o = load_config_text(base, "t.yaml", {"data.train=[{path: x, repeat: 3}, y]"});
  ASSERT_EQ(o.data.train.size(), 2u);
  EXPECT_EQ(o.data.train[0].repeat, 3);
  // Errors name the file, line and key.
  std::string e = error_of([&] {
    load_config_text(std::string(base) + "data:\n  train:\n    - {path: a, repeat: 0}\n", "t.yaml");
  });
  EXPECT_NE(e.find("t.yaml:5"), std::string::npos) << e;
  EXPECT_NE(e.find("data.train"), std::string::npos) << e;
  e = error_of([&] { load_config_text(std::string(base) + "data:\n  train:\n    - {pth: a}\n", "t.yaml"); });
  EXPECT_NE(e.find("'pth'"), std::string::npos) << e;
  // model keys the file sets are remembered (init.from compares only those with the parent).
  EXPECT_NE(std::find(c.given.begin(), c.given.end(), "model.depth"), c.given.end());
  EXPECT_EQ(std::find(c.given.begin(), c.given.end(), "model.width"), c.given.end());
}

TEST(ChatConfig, StageSchedulesOfTheShippedConfigs) {
  // midtraining: constant 1, then linear to 0 over the last 20% (nanochat #68 ran it backwards);
  // SFT: 0.02 x linear from 1 to 0 over the whole run.
  const int64_t N = 100;
  for (const char* name : {"mid.yaml", "tiny_mid.yaml"}) {
    Config c = load_config(test::source_dir() + "/configs/" + name);
    EXPECT_DOUBLE_EQ(optim::stage_lr_multiplier(0, N, c.optim), 1.0) << name;
    EXPECT_DOUBLE_EQ(optim::stage_lr_multiplier(79, N, c.optim), 1.0) << name;
    EXPECT_NEAR(optim::stage_lr_multiplier(90, N, c.optim), 0.5, 1e-12) << name;
    EXPECT_NEAR(optim::stage_lr_multiplier(99, N, c.optim), 0.05, 1e-12) << name;
    EXPECT_EQ(c.data.train_on, "assistant");
  }
  for (const char* name : {"sft.yaml", "tiny_sft.yaml"}) {
    Config c = load_config(test::source_dir() + "/configs/" + name);
    for (int64_t s : {0, 25, 50, 99})
      EXPECT_NEAR(optim::stage_lr_multiplier(s, N, c.optim), 0.02 * (1.0 - double(s) / N), 1e-12) << name << " " << s;
    EXPECT_EQ(c.data.layout, "padded");
  }
}
