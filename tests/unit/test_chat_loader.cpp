// ChatLoader on real records (GSM8K with calculator calls, FastChat's multi-turn ShareGPT chats)
// written by ./prepare --chat's engine: targets are checked against an independent token-level
// reading of the chat template (trained = assistant text, python calls, <|assistant_end|>), not
// against the renderer's own mask. Also packing, rank split, mixtures, shuffling and exact resume.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "data/chat_loader.h"
#include "data/shard.h"
#include "data/shard_prepare.h"
#include "cursor_remap_util.h"
#include "tok_test_util.h"

using namespace kiln;

namespace {

struct ChatFixture {
  std::string dir, tok_path;
  std::unique_ptr<tok::Tokenizer> tok;
  std::vector<std::string> shards;  // train shards of gsm8k, then of the multi-turn chats
};

// 12 GSM8K train records and 9 FastChat ShareGPT conversations (records 1..3 of each exchange
// count are 1, 2 and 3 turns), prepared with no validation split.
ChatFixture make_fixture(const std::string& dir) {
  ChatFixture f;
  f.dir = dir;
  f.tok_path = dir + "/tok.json";
  test::shakespeare_512()->save(f.tok_path);
  f.tok = std::make_unique<tok::Tokenizer>(tok::Tokenizer::load(f.tok_path));
  const std::string data = test::data_dir();
  std::ifstream in(data + "/gsm8k/train.jsonl");
  std::ofstream g(dir + "/gsm8k.jsonl");
  std::string line;
  for (int i = 0; i < 12 && std::getline(in, line); ++i) g << line << "\n";
  g.close();
  std::ifstream js(data + "/chat/fastchat/dummy_conversation.json");
  auto all = nlohmann::json::parse(js);
  nlohmann::json some = nlohmann::json::array();
  for (int i = 0; i < 9; ++i) some.push_back(all[i * 50]);
  std::ofstream(dir + "/chats.json") << some.dump();
  for (auto [name, input] : {std::pair{"g", dir + "/gsm8k.jsonl"}, std::pair{"c", dir + "/chats.json"}}) {
    data::PrepareOptions o;
    o.tokenizer = f.tok_path;
    o.output = dir + "/" + name;
    o.inputs = {input};
    o.chat = true;
    o.val_fraction = 0;
    o.progress = false;
    o.max_len = 0;
    auto r = data::prepare_shards(o);
    f.shards.insert(f.shards.end(), r.train.begin(), r.train.end());
  }
  return f;
}

data::ChatLoaderOptions opts(const ChatFixture& f, int64_t B, int64_t T, bool padded) {
  data::ChatLoaderOptions o;
  o.batch = B, o.seq_len = T, o.padded = padded, o.seed = 7;
  o.pad_id = f.tok->bos_id();
  o.tokenizer_sha256 = f.tok->sha256();
  o.vocab_size = f.tok->vocab_size();
  return o;
}

// Independent reading of the template: is the token at position i (in a rendered conversation)
// one the model is trained to produce?
std::vector<uint8_t> expected_trained(const tok::Tokenizer& t, const std::vector<int64_t>& ids) {
  const int64_t as = t.special_id("<|assistant_start|>"), ae = t.special_id("<|assistant_end|>");
  const int64_t os = t.special_id("<|output_start|>"), oe = t.special_id("<|output_end|>");
  std::vector<uint8_t> out(ids.size(), 0);
  bool in_assistant = false, in_output = false;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t x = ids[i];
    if (x == as) { in_assistant = true; continue; }              // <|assistant_start|>: prompt side
    if (x == os) { in_output = true; continue; }                 // tool output: written by the tool
    if (x == oe) { in_output = false; continue; }
    if (in_assistant && !in_output) out[i] = 1;                  // text, python calls, <|assistant_end|>
    if (x == ae) in_assistant = false;
  }
  return out;
}

// Every document of the fixture's shards, as token ids.
std::vector<std::vector<int64_t>> all_docs(const ChatFixture& f) {
  std::vector<std::vector<int64_t>> docs;
  for (const auto& p : f.shards) {
    data::ShardReader r(p);
    auto off = r.doc_offsets();
    std::vector<uint32_t> t(r.info().num_tokens);
    r.read_tokens(0, t.size(), t.data());
    for (size_t d = 0; d + 1 < off.size(); ++d) docs.emplace_back(t.begin() + off[d], t.begin() + off[d + 1]);
  }
  return docs;
}

}  // namespace

TEST(ChatLoader, PaddedTargetsAreMinusOneExactlyWhereNotTrained) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  auto f = make_fixture(test::temp_dir());
  const auto docs = all_docs(f);
  ASSERT_EQ(docs.size(), 21u);
  const int64_t os = f.tok->special_id("<|output_start|>"), ae = f.tok->special_id("<|assistant_end|>");
  data::ChatLoader masked({{f.shards, 1}}, opts(f, 4, 4096, true));
  auto o_all = opts(f, 4, 4096, true);
  o_all.train_on_all = true;
  data::ChatLoader all({{f.shards, 1}}, o_all);
  ASSERT_EQ(masked.num_rows(), 21);
  std::set<size_t> seen;
  int64_t checked = 0, outputs = 0, padding = 0, multi_turn = 0;
  for (int k = 0; k < 6; ++k) {  // 24 rows: one epoch and 3 rows of the next
    auto b = masked.next(), a = all.next();
    ASSERT_TRUE(torch::equal(b.inputs, a.inputs));
    const int64_t W = b.inputs.size(1);
    for (int64_t r = 0; r < 4; ++r) {
      auto in = b.inputs[r], tg = b.targets[r], tg_all = a.targets[r];
      // Which conversation is this row? The one whose ids start the row (they are distinct).
      size_t d = 0;
      for (; d < docs.size(); ++d)
        if (int64_t(docs[d].size()) - 1 <= W &&
            torch::equal(in.narrow(0, 0, int64_t(docs[d].size()) - 1), torch::tensor(docs[d]).narrow(0, 0, int64_t(docs[d].size()) - 1)))
          break;
      ASSERT_LT(d, docs.size()) << "row " << r << " of batch " << k << " is no conversation";
      if (k * 4 + r < 21) EXPECT_TRUE(seen.insert(d).second) << "row repeated within the epoch";
      const auto& ids = docs[d];
      const auto want = expected_trained(*f.tok, ids);
      int64_t turns = 0;
      for (auto x : ids) turns += x == ae;
      multi_turn += turns > 1;
      const int64_t L = int64_t(ids.size()) - 1;
      for (int64_t j = 0; j < W; ++j) {
        const int64_t t = tg[j].item<int64_t>(), t_all = tg_all[j].item<int64_t>();
        if (j >= L) {  // padding
          EXPECT_EQ(t, -1);
          EXPECT_EQ(t_all, -1);
          EXPECT_EQ(in[j].item<int64_t>(), f.tok->bos_id());
          ++padding;
          continue;
        }
        EXPECT_EQ(t, want[j + 1] ? ids[j + 1] : -1) << "doc " << d << " position " << j;
        EXPECT_EQ(t_all, ids[j + 1]) << "train_on: all must train every non-padding target";
        ++checked;
      }
      // python_output parts: never targets under train_on: assistant.
      bool in_out = false;
      for (int64_t j = 0; j + 1 < int64_t(ids.size()); ++j) {
        if (ids[j + 1] == os) in_out = true;
        if (in_out) {
          EXPECT_EQ(tg[j].item<int64_t>(), -1);
          ++outputs;
        }
        if (ids[j + 1] == f.tok->special_id("<|output_end|>")) in_out = false;
      }
    }
  }
  EXPECT_EQ(seen.size(), 21u);
  EXPECT_GT(outputs, 50) << "GSM8K's calculator outputs must be present and masked";
  EXPECT_GT(padding, 0);
  EXPECT_GT(multi_turn, 3);
  printf("checked %lld targets, %lld in python_output parts, %lld padding, %lld multi-turn rows\n",
         (long long)checked, (long long)outputs, (long long)padding, (long long)multi_turn);
}

TEST(ChatLoader, PackedWindowsFollowTheShuffledConversationsAndSplitOverRanks) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  auto f = make_fixture(test::temp_dir());
  const auto docs = all_docs(f);
  const int64_t B = 2, T = 96;
  data::ChatLoader one({{f.shards, 1}}, opts(f, B, T, false));
  auto o0 = opts(f, B, T, false), o1 = o0;
  o0.world = o1.world = 2, o1.rank = 1;
  data::ChatLoader r0({{f.shards, 1}}, o0), r1({{f.shards, 1}}, o1);
  std::vector<int64_t> stream, targets;  // the windows of one rank, concatenated
  for (int k = 0; k < 40; ++k) {
    auto b = one.next();
    if (k % 2 == 0) ASSERT_TRUE(torch::equal(b.inputs, r0.next().inputs)) << "window " << k;
    else ASSERT_TRUE(torch::equal(b.inputs, r1.next().inputs)) << "window " << k;
    auto flat = b.inputs.flatten(), tg = b.targets.flatten();
    for (int64_t j = 0; j < flat.numel(); ++j) stream.push_back(flat[j].item<int64_t>()), targets.push_back(tg[j].item<int64_t>());
  }
  // Targets against the padded test's independent reading of the template, applied to the packed
  // stream (whole conversations from position 0): the next token where it is trained, else -1.
  // One rank's windows are consecutive, so a window's last target is the next window's first input.
  const auto want = expected_trained(*f.tok, stream);
  int64_t trained = 0, masked = 0;
  for (size_t g = 0; g + 1 < stream.size(); ++g) {
    ASSERT_EQ(targets[g], want[g + 1] ? stream[g + 1] : -1) << "stream position " << g;
    (want[g + 1] ? trained : masked)++;
  }
  EXPECT_GT(trained, 500);
  EXPECT_GT(masked, 500) << "user turns and tool outputs must be in the windows, and masked";
  // The stream is whole conversations back to back: every <|bos|> starts one of the documents.
  int64_t starts = 0;
  for (size_t j = 0; j < stream.size(); ++j) {
    if (stream[j] != f.tok->bos_id()) continue;
    bool found = false;
    for (const auto& d : docs) {
      const size_t n = std::min(d.size(), stream.size() - j);
      if (std::equal(d.begin(), d.begin() + n, stream.begin() + j)) found = true;
    }
    EXPECT_TRUE(found) << "position " << j;
    ++starts;
  }
  EXPECT_GT(starts, 21);  // more than one epoch went by
}

TEST(ChatLoader, MixtureRepeatsShuffleSeedAndExactRestore) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  auto f = make_fixture(test::temp_dir());
  const std::vector<std::string> gsm = {f.shards[0]}, chats = {f.shards[1]};
  data::ChatLoader mix({{gsm, 1}, {chats, 2}}, opts(f, 1, 4096, true));
  EXPECT_EQ(mix.num_rows(), 12 + 2 * 9);
  // One epoch shows each GSM8K record once and each chat twice.
  std::map<std::string, int> count;
  for (int i = 0; i < 30; ++i) {
    auto in = mix.next().inputs.flatten();
    count[std::string((const char*)in.data_ptr<int64_t>(), in.numel() * 8)]++;
  }
  int ones = 0, twos = 0;
  for (auto& [k, v] : count) ones += v == 1, twos += v == 2;
  EXPECT_EQ(ones, 12);
  EXPECT_EQ(twos, 9);
  // Same seed, same order; another seed, another order.
  data::ChatLoader a({{f.shards, 1}}, opts(f, 3, 4096, true)), b({{f.shards, 1}}, opts(f, 3, 4096, true));
  auto oc = opts(f, 3, 4096, true);
  oc.seed = 8;
  data::ChatLoader c({{f.shards, 1}}, oc);
  auto a0 = a.next(), b0 = b.next(), c0 = c.next();
  EXPECT_TRUE(torch::equal(a0.inputs, b0.inputs));
  EXPECT_FALSE(a0.inputs.sizes() == c0.inputs.sizes() && torch::equal(a0.inputs, c0.inputs));
  // A restored cursor replays the exact stream, across the epoch boundary.
  for (int i = 0; i < 7; ++i) a.next();
  const data::Cursor cur = a.cursor();
  EXPECT_EQ(cur.epoch, 1);  // 8 batches x 3 rows = 24 rows: 3 rows into the second epoch
  EXPECT_EQ(cur.position, 3);
  std::vector<data::Batch> want;
  for (int i = 0; i < 4; ++i) want.push_back(a.next());
  data::ChatLoader r({{f.shards, 1}}, opts(f, 3, 4096, true));
  r.restore(cur);
  for (int i = 0; i < 4; ++i) {
    auto got = r.next();
    EXPECT_TRUE(torch::equal(got.inputs, want[i].inputs) && torch::equal(got.targets, want[i].targets)) << i;
  }
}

TEST(ChatLoader, PretrainingShardsAreRefusedNamingTheFile) {
  if (test::data_dir().empty()) GTEST_SKIP() << "needs ../shared/data";
  const std::string dir = test::temp_dir();
  test::shakespeare_512()->save(dir + "/tok.json");
  test::spit(dir + "/t.txt", "hello world\nthis is text\n");
  data::PrepareOptions o;
  o.tokenizer = dir + "/tok.json", o.output = dir + "/s", o.inputs = {dir + "/t.txt"}, o.val_fraction = 0;
  o.progress = false;
  auto r = data::prepare_shards(o);
  data::ChatLoaderOptions lo;
  try {
    data::ChatLoader l({{r.train, 1}}, lo);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(r.train[0]), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--chat"), std::string::npos) << e.what();
  }
}

// Issue 14: a resume on another world size remaps the cursor; chat stages read per step the same
// conversations as the uninterrupted run (packed windows and padded rows alike).
TEST(ChatLoader, CursorRemapKeepsTheRowsOfEveryStep) {
  auto f = make_fixture(test::temp_dir());
  for (bool padded : {false, true}) {
    data::ChatLoaderOptions o;
    o.batch = 2;
    o.seq_len = 24;
    o.seed = 5;
    o.padded = padded;
    o.pad_id = 0;
    o.tokenizer_sha256 = f.tok->sha256();
    o.vocab_size = f.tok->vocab_size();
    test::expect_remap_keeps_data(
        [&](int rank, int world) {
          data::ChatLoaderOptions r = o;
          r.rank = rank;
          r.world = world;
          return std::make_unique<data::ChatLoader>(std::vector<data::ChatSource>{{f.shards, 1}}, r);
        },
        o.batch, o.pad_id);
  }
}
