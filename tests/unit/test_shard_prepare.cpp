// ./prepare's engine: the nanoGPT split of a text file (cut at a line, <|bos|> first, nothing
// lost), the demo's tinyshakespeare run with a byte-level tokenizer, JSONL and chat shards with
// loss masks, shard roll-over, restart over old shards, and an h5py read of every attribute.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/shard.h"
#include "data/shard_prepare.h"
#include "tok_test_util.h"
#include "tokenizer/chat.h"

using namespace kiln;

namespace {
std::vector<uint32_t> all_tokens(const std::string& path) {
  data::ShardReader r(path);
  std::vector<uint32_t> v(r.info().num_tokens);
  r.read_tokens(0, v.size(), v.data());
  return v;
}

std::string save_tokenizer(const tok::Tokenizer& t, const std::string& dir) {
  t.save(dir + "/tok.json");
  return dir + "/tok.json";
}
}  // namespace

TEST(ShardPrepare, TextFileSplitsAtALineWithBosFirst) {
  std::string dir = test::temp_dir();
  std::string text;
  for (int i = 0; i < 200; ++i) text += "Line number " + std::to_string(i) + " of the play.\n";
  test::spit(dir + "/in.txt", text);
  auto bytes = tok::Tokenizer::from_merges({});
  data::PrepareOptions o{save_tokenizer(bytes, dir), dir + "/out", {dir + "/in.txt"}};
  o.val_fraction = 0.1;
  o.progress = false;
  auto r = data::prepare_shards(o);
  ASSERT_EQ(r.train, std::vector<std::string>{dir + "/out/train_0000.h5"});
  ASSERT_EQ(r.val, std::vector<std::string>{dir + "/out/val_0000.h5"});
  auto train = all_tokens(r.train[0]), val = all_tokens(r.val[0]);
  ASSERT_EQ(train[0], bytes.bos_id());
  ASSERT_EQ(val[0], bytes.bos_id());
  std::string head = bytes.decode({train.begin() + 1, train.end()});
  std::string tail = bytes.decode({val.begin() + 1, val.end()});
  EXPECT_EQ(head + tail, text);
  EXPECT_EQ(head.back(), '\n');  // cut at a line boundary
  uint64_t t = uint64_t(0.9 * double(text.size()));
  EXPECT_GE(head.size(), t);
  EXPECT_LT(head.size(), t + 40);  // ... the first one at or after 90%
  data::ShardReader rd(r.train[0], bytes.sha256(), bytes.vocab_size());
  EXPECT_EQ(rd.info().num_docs, 1u);
}

TEST(ShardPrepare, TinyShakespeareDemo) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  std::string dir = test::temp_dir();
  std::string input = test::data_dir() + "/tinyshakespeare/input.txt";
  tok::TrainOptions to;
  to.inputs = {input};
  to.vocab_size = 265;
  auto t = tok::train_tokenizer(to);
  data::PrepareOptions o{save_tokenizer(t, dir), dir, {input}};
  o.val_fraction = 0.1;
  o.progress = false;
  auto r = data::prepare_shards(o);
  uint64_t size = std::filesystem::file_size(input), cut = data::text_split_point(input, 0.1);
  EXPECT_EQ(r.train_tokens, cut + 1);  // one byte per token, plus <|bos|>
  EXPECT_EQ(r.val_tokens, size - cut + 1);
  EXPECT_TRUE(std::filesystem::exists(dir + "/train_0000.h5"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/val_0000.h5"));
  auto listed = data::list_shards(dir + "/train_*.h5");
  EXPECT_EQ(listed, std::vector<std::string>{dir + "/train_0000.h5"});
}

TEST(ShardPrepare, JsonlRecordsSpreadToValAndRollOver) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  std::string dir = test::temp_dir();
  const auto* t = test::shakespeare_512();
  data::PrepareOptions o{save_tokenizer(*t, dir), dir + "/out", {test::data_dir() + "/gsm8k/test.jsonl"}};
  o.field = "question";
  o.val_fraction = 0.25;
  o.shard_tokens = 20000;
  o.progress = false;
  auto r = data::prepare_shards(o);
  EXPECT_EQ(r.train_docs + r.val_docs, 1319u);
  EXPECT_EQ(r.val_docs, 329u);  // floor(1319 * 0.25): records 3, 7, 11, ...
  EXPECT_GT(r.train.size(), 2u);
  uint64_t sum = 0;
  for (size_t i = 0; i < r.train.size(); ++i) {
    char name[32];
    snprintf(name, sizeof name, "/out/train_%04zu.h5", i);
    EXPECT_EQ(r.train[i], dir + name);
    data::ShardReader rd(r.train[i], t->sha256(), t->vocab_size());
    sum += rd.info().num_tokens;
  }
  EXPECT_EQ(sum, r.train_tokens);
  // The first train document is record 0's question after <|bos|>.
  auto first = all_tokens(r.train[0]);
  data::ShardReader rd(r.train[0]);
  auto offs = rd.doc_offsets();
  std::string q0 = nlohmann::json::parse(test::slurp(o.inputs[0]).substr(0, test::slurp(o.inputs[0]).find('\n')))["question"];
  std::vector<uint32_t> want = t->encode(q0);
  want.insert(want.begin(), t->bos_id());
  EXPECT_EQ(std::vector<uint32_t>(first.begin(), first.begin() + offs[1]), want);

  // A rerun with larger shards replaces the old set instead of mixing with it.
  o.shard_tokens = 100000000;
  auto r2 = data::prepare_shards(o);
  EXPECT_EQ(r2.train.size(), 1u);
  EXPECT_EQ(data::list_shards(dir + "/out/train_*.h5").size(), 1u);
}

TEST(ShardPrepare, ChatShardsCarryTheLossMask) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  std::string dir = test::temp_dir();
  const auto* t = test::shakespeare_512();
  std::string in = dir + "/gsm.jsonl", all = test::slurp(test::data_dir() + "/gsm8k/train.jsonl");
  size_t pos = 0;
  for (int i = 0; i < 40; ++i) pos = all.find('\n', pos) + 1;
  test::spit(in, all.substr(0, pos));
  data::PrepareOptions o{save_tokenizer(*t, dir), dir + "/out", {in}, true, 0.1};
  o.progress = false;
  auto r = data::prepare_shards(o);
  EXPECT_EQ(r.train_docs, 36u);
  EXPECT_EQ(r.val_docs, 4u);
  data::ShardReader rd(r.train[0]);
  ASSERT_TRUE(rd.info().has_loss_mask);
  auto offs = rd.doc_offsets();
  std::vector<uint32_t> ids(offs[1]);
  std::vector<uint8_t> mask(offs[1]);
  rd.read_tokens(0, ids.size(), ids.data());
  rd.read_loss_mask(0, mask.size(), mask.data());
  auto want = tok::render_conversation(*t, tok::conversation_from_json(nlohmann::json::parse(all.substr(0, all.find('\n'))), "x"));
  EXPECT_EQ(ids, want.ids);
  EXPECT_EQ(mask, want.mask);
  // A plain-text input is refused in chat mode, with the file named.
  test::spit(dir + "/plain.txt", "hello\n");
  o.inputs = {dir + "/plain.txt"};
  try {
    data::prepare_shards(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("plain.txt"), std::string::npos);
  }
  // A bad record names file:line.
  test::spit(dir + "/bad.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n{\"x\": 1}\n");
  o.inputs = {dir + "/bad.jsonl"};
  try {
    data::prepare_shards(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(ShardPrepare, H5pyReadsEveryAttribute) {
  std::string py = KILN_PYTHON;
  if (std::system((py + " -c 'import h5py' 2>/dev/null").c_str()) != 0) GTEST_SKIP() << "no h5py for " << py;
  std::string dir = test::temp_dir();
  test::spit(dir + "/in.txt", "To be, or not to be.\nThat is the question.\n");
  auto bytes = tok::Tokenizer::from_merges({});
  data::PrepareOptions o{save_tokenizer(bytes, dir), dir, {dir + "/in.txt"}};
  o.val_fraction = 0.0;
  o.progress = false;
  data::prepare_shards(o);
  std::string script = dir + "/check.py";
  test::spit(script,
             "import sys, h5py\n"
             "f = h5py.File(sys.argv[1], 'r')\n"
             "need = ['format','format_version','vocab_size','bos_id','tokenizer_sha256','num_tokens','num_docs','source','created_by']\n"
             "assert all(k in f.attrs for k in need), sorted(f.attrs)\n"
             "assert f.attrs['format'] == 'kiln.tokens' and f.attrs['vocab_size'] == 265\n"
             "assert f.attrs['tokenizer_sha256'] == sys.argv[2]\n"
             "t = f['tokens'][:]\n"
             "assert t.dtype == 'uint16' and len(t) == f.attrs['num_tokens'] and t[0] == 256\n"
             "assert bytes(t[1:].astype('uint8')) == open(sys.argv[3], 'rb').read()\n"
             "assert list(f['doc_offsets'][:]) == [0, len(t)]\n");
  std::string cmd = py + " " + script + " " + dir + "/train_0000.h5 " + bytes.sha256() + " " + dir + "/in.txt";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_FALSE(std::filesystem::exists(dir + "/val_0000.h5"));  // --val-fraction 0: no val shard
}
