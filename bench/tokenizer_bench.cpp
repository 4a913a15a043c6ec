// Tokenizer bench (kiln side): training time and encode throughput on one core and on all cores,
// for bench/tokenizer_bench.sh, which prints these beside tiktoken's and rustbpe's on the same
// text. Documents are the text's blank-line-separated paragraphs, as in the Python side.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "tokenizer/parallel.h"
#include "tokenizer/train.h"

using namespace kiln;
using clk = std::chrono::steady_clock;

static double secs(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: tokenizer_bench TEXT VOCAB OUT_TOKENIZER_JSON\n");
    return 2;
  }
  std::string path = argv[1], out = argv[3];
  uint32_t vocab = uint32_t(atoi(argv[2]));
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  std::vector<std::string> docs;
  for (size_t pos = 0; pos < text.size();) {
    size_t e = text.find("\n\n", pos);
    e = e == std::string::npos ? text.size() : e + 2;
    docs.push_back(text.substr(pos, e - pos));
    pos = e;
  }
  tok::TrainOptions o;
  o.inputs = {path};
  o.vocab_size = vocab;
  auto t0 = clk::now();
  tok::TrainStats st;
  auto t = tok::train_tokenizer(o, &st);
  double train_s = secs(t0);
  t.save(out);

  double mb = double(text.size()) / 1e6;
  size_t n1 = 0;
  t0 = clk::now();
  for (const auto& d : docs) n1 += t.encode(d).size();
  double one_s = secs(t0);
  t0 = clk::now();
  auto all = t.encode_batch(docs);
  double all_s = secs(t0);
  size_t n2 = 0;
  for (const auto& v : all) n2 += v.size();
  if (n1 != n2) { fprintf(stderr, "batch and single encode disagree\n"); return 1; }
  printf("kiln  train %.2f s (count %.2f s, %zu merges %.2f s) | encode 1 core %.2f MB/s | %u cores %.2f MB/s | %.3f bytes/token\n",
         train_s, st.count_seconds, t.merges().size(), st.merge_seconds, mb / one_s, tok::default_threads(), mb / all_s,
         double(text.size()) / double(n1));
  return 0;
}
