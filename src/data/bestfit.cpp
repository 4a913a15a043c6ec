// BestFitPacker; see bestfit.h. The rule is nanochat's dataloader.py (commit 92d63d4) written
// again: before each placement the buffer is topped up (whole refills of kRefillDocs) to at least
// kBufferDocs; the pick is the longest document that fits, the oldest among equals; when none
// fits, the shortest is cropped, the oldest among equals. A linear scan, as there: ~1000 documents
// a placement is microseconds, and it keeps the tie rule obvious.
#include "data/bestfit.h"

#include <algorithm>

#include "core/error.h"
#include "core/json_file.h"

namespace kiln::data {

nlohmann::json BestFitState::to_json() const {
  return {{"docs", docs}, {"rows", rows}, {"next_doc", next_doc}, {"cropped", cropped}, {"buffer", buffer}};
}

BestFitState BestFitState::from_json(const nlohmann::json& j, const std::string& where) {
  BestFitState s;
  s.docs = json_get<int64_t>(j, "docs", where);
  s.rows = json_get<int64_t>(j, "rows", where);
  s.next_doc = json_get<int64_t>(j, "next_doc", where);
  s.cropped = json_get<int64_t>(j, "cropped", where);
  s.buffer = json_get<std::vector<int64_t>>(j, "buffer", where);
  int64_t prev = -1;
  for (int64_t d : s.buffer) {
    if (d <= prev || d >= s.next_doc)
      throw Error(where + ": the loader's best-fit buffer is damaged (document " + std::to_string(d) +
                      " after " + std::to_string(prev) + ", next " + std::to_string(s.next_doc) + ")",
                  "resume from an earlier checkpoint");
    prev = d;
  }
  if (s.docs < 1 || s.rows < 0 || s.cropped < 0)
    throw Error(where + ": the loader's best-fit state is damaged (docs " + std::to_string(s.docs) + ", rows " +
                    std::to_string(s.rows) + ")",
                "resume from an earlier checkpoint");
  return s;
}

BestFitPacker::BestFitPacker(std::vector<int64_t> bounds, int64_t row_tokens) : row_tokens_(row_tokens) {
  for (size_t i = 0; i + 1 < bounds.size(); ++i)
    if (bounds[i + 1] > bounds[i]) start_.push_back(bounds[i]), len_.push_back(bounds[i + 1] - bounds[i]);
  if (start_.empty()) throw Error("[data] best-fit packing: the shards hold no documents", "check data.train / data.val");
  st_.docs = num_docs();
}

void BestFitPacker::refill() {
  for (int64_t i = 0; i < kRefillDocs; ++i) {
    st_.buffer.push_back(st_.next_doc);
    buf_len_.push_back(len_[st_.next_doc % num_docs()]);
    ++st_.next_doc;
  }
}

int64_t BestFitPacker::pack_row(std::vector<RowPiece>& out) {
  int64_t pos = 0, cropped = 0;
  while (pos < row_tokens_) {
    while (static_cast<int64_t>(st_.buffer.size()) < kBufferDocs) refill();
    const int64_t room = row_tokens_ - pos;
    int64_t pick = -1, pick_len = 0;
    for (size_t i = 0; i < buf_len_.size(); ++i)
      if (buf_len_[i] <= room && buf_len_[i] > pick_len) pick = static_cast<int64_t>(i), pick_len = buf_len_[i];
    int64_t take = pick_len;
    if (pick < 0) {  // nothing fits: crop the shortest to fill the row
      pick = 0;
      for (size_t i = 1; i < buf_len_.size(); ++i)
        if (buf_len_[i] < buf_len_[pick]) pick = static_cast<int64_t>(i);
      take = room;
      cropped += buf_len_[pick] - room;
    }
    out.push_back({start_[st_.buffer[pick] % num_docs()], take});
    st_.buffer.erase(st_.buffer.begin() + pick);
    buf_len_.erase(buf_len_.begin() + pick);
    pos += take;
  }
  ++st_.rows;
  st_.cropped += cropped;
  return cropped;
}

void BestFitPacker::set_state(const BestFitState& s) {
  if (s.docs != num_docs())
    throw Error("[data] the checkpoint's best-fit loader packed " + std::to_string(s.docs) +
                    " documents, the shards now hold " + std::to_string(num_docs()),
                "resume with the data.train shards the run started with");
  st_ = s;
  buf_len_.clear();
  for (int64_t d : st_.buffer) buf_len_.push_back(len_[d % num_docs()]);
}

}  // namespace kiln::data
