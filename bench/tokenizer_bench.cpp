// Tokenizer bench (kiln side): training time and encode throughput on one core and on all cores,
// for bench/tokenizer_bench.sh, which prints these beside tiktoken's and rustbpe's on the same
// text. Documents are the text's blank-line-separated paragraphs, as in the Python side. Then one
// unbroken run of letters (the text's letters, spaces and the rest dropped) of 0.25, 1 and 4 MB:
// BPE merge cost on one huge chunk, with the previous quadratic scan on 0.25 MB beside it.
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "tokenizer/bpe_merge.h"
#include "core/parallel.h"
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
         train_s, st.count_seconds, t.merges().size(), st.merge_seconds, mb / one_s, default_threads(), mb / all_s,
         double(text.size()) / double(n1));
  // One unbroken run of letters, repeated to 4 MB (the same bytes tokenizer_bench.py uses).
  std::string letters;
  for (char c : text)
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) letters += c;
  if (letters.empty()) return 0;
  while (letters.size() < (4u << 20)) letters += letters;
  for (size_t kb : {256, 1024, 4096}) {
    std::string_view run(letters.data(), kb << 10);
    t0 = clk::now();
    const std::clock_t c0 = std::clock();  // CPU time too: wall time on a shared machine is noisy
    size_t n = t.encode(run).size();
    printf("kiln  one run of letters %5.2f MB: encode %.3f s (CPU %.3f s, %zu tokens)\n", double(kb) / 1024, secs(t0),
           double(std::clock() - c0) / CLOCKS_PER_SEC, n);
  }
  // The previous algorithm (a full scan per merge) on 0.25 MB, for the before/after figure.
  tok::PairMap ranks;
  ranks.reserve(t.merges().size());
  for (size_t r = 0; r < t.merges().size(); ++r) ranks.insert(tok::pair_key(t.merges()[r].first, t.merges()[r].second), uint32_t(r));
  std::vector<uint32_t> ids(letters.begin(), letters.begin() + (256 << 10));
  for (auto& id : ids) id &= 0xff;
  t0 = clk::now();
  size_t n = tok::bpe_merge_scan(ids, ids.size(), ranks);
  printf("kiln  one run of letters  0.25 MB with the previous scan merge: %.3f s (%zu tokens)\n", secs(t0), n);
  return 0;
}
