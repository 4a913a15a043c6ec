// The C++ BPE against tests/reference/bpe_reference.py (an obviously-correct Python BPE): on a
// ~1 MB sample (tinyshakespeare + Frankenstein) at vocab 2,048, the same merges in the same order
// and the same ids for a held-out book (Alice). Needs ../shared/data and KILN_PYTHON with `regex`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tok_test_util.h"

using namespace kiln;

namespace {
// The first `limit` bytes of a file, cut after its last newline (so UTF-8 is never split).
std::string head_lines(const std::string& path, size_t limit) {
  std::string s = test::slurp(path).substr(0, limit);
  return s.substr(0, s.rfind('\n') + 1);
}
}  // namespace

TEST(TokReference, SameMergesAndIdsAsPythonReference) {
  if (test::data_dir().empty()) GTEST_SKIP() << "no shared data";
  std::string py = KILN_PYTHON;
  if (std::system((py + " -c 'import regex' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << py << " lacks the `regex` module (./launch/setup.sh installs it)";
  std::string dir = test::temp_dir();
  std::string sample = dir + "/sample.txt", held = test::data_dir() + "/prose/pg11.txt", out = dir + "/ref.json";
  test::spit(sample, head_lines(test::data_dir() + "/tinyshakespeare/input.txt", 600000) +
                         head_lines(test::data_dir() + "/prose/pg84.txt", 400000));
  std::string cmd = py + " " + test::source_dir() + "/tests/reference/bpe_reference.py " + sample + " 2048 " + held +
                    " " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto ref = nlohmann::json::parse(test::slurp(out));

  tok::TrainOptions o;
  o.inputs = {sample};
  o.vocab_size = 2048;
  auto t = tok::train_tokenizer(o);
  ASSERT_EQ(ref["merges"].size(), 2048u - 265u);
  ASSERT_EQ(t.merges().size(), ref["merges"].size());
  for (size_t r = 0; r < t.merges().size(); ++r) {
    tok::Merge want{ref["merges"][r][0].get<uint32_t>(), ref["merges"][r][1].get<uint32_t>()};
    ASSERT_EQ(t.merges()[r], want) << "first difference at merge rank " << r;
  }
  auto ids = t.encode(test::slurp(held));
  EXPECT_EQ(ids, ref["ids"].get<std::vector<uint32_t>>());
}
