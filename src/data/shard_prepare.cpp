// ./prepare (see shard_prepare.h): a reader gathers batches (text blocks or JSONL lines), all
// cores encode or render them, and one writer appends them in input order, so the output is
// deterministic whatever the thread count. Shards are written aside and swapped in at the end
// (shard_dataset.h), so a failed run leaves the previous dataset as it was.
#include "data/shard_prepare.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/shard_dataset.h"
#include "data/chat_sources.h"
#include "data/shard_writer.h"
#include "tokenizer/chat.h"
#include "core/corpus.h"
#include "tokenizer/split.h"  // safe_cut
#include "core/parallel.h"
#include "tokenizer/tokenizer.h"

namespace kiln::data {
namespace fs = std::filesystem;

namespace {

// Consecutive shards of one split; a new shard starts once the current one is full.
class ShardSeries {
 public:
  ShardSeries(std::string dir, std::string split, ShardMeta meta, uint64_t limit, bool mask)
      : dir_(std::move(dir)), split_(std::move(split)), meta_(std::move(meta)), limit_(limit), mask_(mask) {}
  void append(const std::vector<uint32_t>& ids, const std::vector<uint8_t>* mask = nullptr) {
    if (!w_) {
      char name[32];
      snprintf(name, sizeof name, "%s_%04zu.h5", split_.c_str(), paths_.size());
      cur_ = (fs::path(dir_) / name).string();
      w_ = std::make_unique<ShardWriter>(cur_, meta_, mask_);
    }
    w_->append(ids.data(), ids.size(), mask ? mask->data() : nullptr);
    tokens_ += ids.size();
  }
  void end_document() {
    if (!w_) return;
    w_->end_document();
    ++docs_;
    if (w_->num_tokens() >= limit_) close();
  }
  void close() {
    if (!w_) return;
    w_->finish();
    w_.reset();
    paths_.push_back(cur_);
  }
  const std::vector<std::string>& paths() const { return paths_; }
  uint64_t tokens() const { return tokens_; }
  uint64_t docs() const { return docs_; }

 private:
  std::string dir_, split_, cur_;
  ShardMeta meta_;
  uint64_t limit_;
  bool mask_;
  std::unique_ptr<ShardWriter> w_;
  std::vector<std::string> paths_;
  uint64_t tokens_ = 0, docs_ = 0;
};

// One progress line on stderr: bytes done of total, speed, tokens.
class Progress {
 public:
  Progress(bool on, uint64_t total) : on_(on), total_(total), tty_(isatty(2)) {}
  void update(uint64_t done, uint64_t tokens, bool last = false) {
    if (!on_) return;
    auto now = std::chrono::steady_clock::now();
    double since = std::chrono::duration<double>(now - last_).count();
    if (!last && since < (tty_ ? 0.5 : 10.0)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - t0_).count();
    fprintf(stderr, "%s[prepare] %5.1f%%  %.1f / %.1f MB  %.1f MB/s  %llu tokens%s", tty_ ? "\r" : "",
            total_ ? 100.0 * double(done) / double(total_) : 100.0, double(done) / 1e6, double(total_) / 1e6,
            secs > 0 ? double(done) / 1e6 / secs : 0.0, (unsigned long long)tokens, tty_ && !last ? "" : "\n");
  }

 private:
  bool on_;
  uint64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now(), last_{};
};

}  // namespace

uint64_t text_split_point(const std::string& path, double f) {
  uint64_t size = file_size(path);
  uint64_t t = uint64_t(std::floor((1.0 - f) * double(size)));
  if (f <= 0 || t >= size) return size;
  std::ifstream in(path, std::ios::binary);
  in.seekg(std::streamoff(t > 0 ? t - 1 : 0));
  uint64_t pos = t > 0 ? t - 1 : 0;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    for (std::streamsize i = 0; i < in.gcount(); ++i, ++pos)
      if (buf[i] == '\n') return pos + 1;
  }
  return size;  // no newline after the cut: all of it is train
}

PrepareResult prepare_shards(const PrepareOptions& opt) {
  if (!(opt.val_fraction >= 0.0 && opt.val_fraction < 1.0))
    throw Error("[prepare] --val-fraction " + std::to_string(opt.val_fraction) + " is out of range",
                "give a fraction in [0, 1), e.g. 0.1 for the last 10% of a text file");
  auto tok = tok::Tokenizer::load(opt.tokenizer);
  auto files = expand_inputs(opt.inputs);
  DatasetStaging staging(opt.output);  // the old shards stay until every new one is written

  ShardMeta meta{tok.vocab_size(), tok.bos_id(), tok.sha256(), "", "kiln prepare"};
  uint64_t total = 0;
  for (const auto& f : files) {
    meta.source += (meta.source.empty() ? "" : ", ") + f;
    total += file_size(f);
  }
  ShardSeries train(staging.dir(), "train", meta, opt.shard_tokens, opt.chat);
  ShardSeries val(staging.dir(), "val", meta, opt.shard_tokens, opt.chat);
  Progress progress(opt.progress, total);
  const unsigned threads = default_threads();
  uint64_t done_bytes = 0, record = 0;
  const double F = opt.val_fraction;
  const data::ChatFormat requested = opt.chat ? chat_format_from_name(opt.format) : ChatFormat::Auto;
  PrepareResult res;
  // One rendered record (or a malformed one) to its split, in input order. A malformed record
  // fails the run naming file:line, or with --skip-bad is counted and its place reported.
  auto emit = [&](const tok::Rendered& r, const std::string& error) {
    if (!error.empty()) {
      if (!opt.skip_bad) throw Error(error, "fix the record, or pass --skip-bad to count and skip malformed records");
      if (res.skipped_first.size() < 5) res.skipped_first.push_back(error);
      ++res.skipped;
      return;
    }
    bool to_val = std::floor(double(record + 1) * F) > std::floor(double(record) * F);
    ++record;
    ShardSeries& s = to_val ? val : train;
    s.append(r.ids, opt.chat ? &r.mask : nullptr);
    s.end_document();
  };
  auto render = [&](const tok::Conversation& conv, const std::string& where, tok::Rendered& out, std::string& err) {
    try {
      out = tok::render_conversation(tok, conv, opt.max_len);
    } catch (const Error& e) {
      std::string msg = e.what();
      err = msg.starts_with("[chat] " + where) ? msg : "[prepare] " + where + ": " + msg;
    }
  };

  for (const auto& path : files) {
    const ChatFormat fmt = opt.chat ? detect_chat_format(path, requested) : ChatFormat::Auto;
    if (opt.chat && chat_file_is_whole(path, fmt)) {
      // A JSON array, ARC or MMLU: all records at once, rendered in parallel, written in order.
      auto recs = read_chat_file(path, fmt);
      std::vector<tok::Rendered> out(recs.size());
      parallel_for(recs.size(), [&](size_t i) {
        if (recs[i].error.empty()) render(recs[i].conv, recs[i].where, out[i], recs[i].error);
      }, threads);
      for (size_t i = 0; i < recs.size(); ++i) emit(out[i], recs[i].error);
      done_bytes += file_size(path);
      progress.update(done_bytes, train.tokens() + val.tokens());
      continue;
    }
    if (!is_jsonl(path)) {
      if (opt.chat)
        throw Error("[prepare] --chat needs JSONL conversations, but " + path + " is not a .jsonl file",
                    "give *.jsonl files with \"messages\" lists or GSM8K question/answer records");
      // Plain text: one train document and one val document, each encoded block by block.
      uint64_t size = file_size(path), cut = text_split_point(path, F);
      for (auto [begin, end, series] : {std::tuple{uint64_t(0), cut, &train}, std::tuple{cut, size, &val}}) {
        if (begin == end) continue;
        series->append({tok.bos_id()});
        TextBlockReader reader(path, begin, end, tok::safe_cut);
        std::vector<std::string> blocks;
        std::string b;
        bool more = true;
        while (more) {
          blocks.clear();
          while (blocks.size() < 4 * threads && (more = reader.next(b))) blocks.push_back(std::move(b));
          auto ids = tok.encode_batch(blocks);
          for (size_t i = 0; i < ids.size(); ++i) {
            series->append(ids[i]);
            done_bytes += blocks[i].size();
          }
          progress.update(done_bytes, train.tokens() + val.tokens());
        }
        series->end_document();
      }
      continue;
    }
    // JSONL: batches of lines, parsed and encoded in parallel, written in order.
    JsonlReader reader(path);
    std::vector<std::string> lines;
    std::vector<size_t> line_nos;
    std::string line;
    bool more = true;
    while (more) {
      lines.clear();
      line_nos.clear();
      size_t bytes = 0;
      while (lines.size() < 8192 && bytes < (32u << 20) && (more = reader.next_line(line))) {
        bytes += line.size() + 1;
        lines.push_back(std::move(line));
        line_nos.push_back(reader.line_no());
      }
      std::vector<tok::Rendered> out(lines.size());
      std::vector<std::string> errs(lines.size());
      parallel_for(lines.size(), [&](size_t i) {
        std::string where = path + ":" + std::to_string(line_nos[i]);
        nlohmann::json rec;
        try {
          rec = nlohmann::json::parse(lines[i]);
        } catch (const nlohmann::json::exception& e) {
          if (!opt.chat)
            throw Error("[prepare] " + where + ": not valid JSON: " + e.what(), "JSONL files hold one JSON object per line");
          errs[i] = "[prepare] " + where + ": not valid JSON: " + e.what();
          return;
        }
        if (opt.chat) {
          tok::Conversation conv;
          try {
            conv = conversation_from_record(rec, fmt, where);
          } catch (const Error& e) {
            errs[i] = e.what();
            return;
          }
          render(conv, where, out[i], errs[i]);
        } else {
          out[i].ids = tok.encode(text_field(rec, opt.field, path, line_nos[i]));
          out[i].ids.insert(out[i].ids.begin(), tok.bos_id());
        }
      }, threads);
      for (size_t i = 0; i < out.size(); ++i) emit(out[i], errs[i]);
      done_bytes += bytes;
      progress.update(done_bytes, train.tokens() + val.tokens());
    }
  }
  train.close();
  val.close();
  progress.update(done_bytes, train.tokens() + val.tokens(), true);
  std::vector<std::string> staged = train.paths();
  staged.insert(staged.end(), val.paths().begin(), val.paths().end());
  auto final_paths = staging.commit(staged, tok.sha256());
  const auto split = final_paths.begin() + std::ptrdiff_t(train.paths().size());
  res.train.assign(final_paths.begin(), split);
  res.val.assign(split, final_paths.end());
  res.train_tokens = train.tokens(), res.val_tokens = val.tokens();
  res.train_docs = train.docs(), res.val_docs = val.docs();
  return res;
}

}  // namespace kiln::data
