// Best-fit packing of documents into rows (nanochat's BOS-aligned best-fit loader, issue 22): every
// row of T+1 tokens starts at a document's first token (its <|bos|>). Documents wait in a buffer of
// the next ~1000; a row takes the largest buffered document that still fits, again and again; when
// none fits, the shortest buffered document is cropped to fill the row exactly and its tail is
// dropped. No padding: every position trains. Only document lengths decide the packing, so every
// rank can pack the global rows (all ranks' rows) and read the tokens of its own only.
// No torch here: kiln_core-level code, the state is plain integers.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln::data {

// Where the packer stands after `rows` global rows. Documents get serial numbers in the order
// they enter the buffer (serial s is document s mod D, epoch s / D); the buffer holds serials in
// arrival order. Together with the document table this determines every later row.
struct BestFitState {
  int64_t docs = 0;                 // documents in the data (a restore checks the shards still hold as many)
  int64_t rows = 0;
  int64_t next_doc = 0;             // serial of the next document to enter the buffer
  int64_t cropped = 0;              // document tokens dropped by crops so far
  std::vector<int64_t> buffer;      // serials waiting, oldest first

  nlohmann::json to_json() const;
  // Throws kiln::Error naming `where` when a field is missing, or a serial is not below next_doc.
  static BestFitState from_json(const nlohmann::json& j, const std::string& where);
  bool operator==(const BestFitState&) const = default;
};

// A run of one document's tokens placed in a row: stream offset and length (the first piece of a
// row and every later one start at a document's first token).
struct RowPiece {
  int64_t start = 0, len = 0;
};

class BestFitPacker {
 public:
  static constexpr int64_t kBufferDocs = 1000;  // nanochat's buffer_size: refill below this many
  static constexpr int64_t kRefillDocs = 128;   // nanochat's tokenizer_batch_size: documents per refill

  // doc_bounds: stream offsets of the documents' starts and the end of the last (D+1 entries,
  // non-decreasing); empty documents are skipped. row_tokens = T+1.
  BestFitPacker(std::vector<int64_t> doc_bounds, int64_t row_tokens);

  // The next global row's pieces (their lengths sum to row_tokens); returns the tokens cropped.
  int64_t pack_row(std::vector<RowPiece>& out);

  const BestFitState& state() const { return st_; }
  // Continue from `s` (a checkpoint's); the buffered lengths are looked up again.
  void set_state(const BestFitState& s);
  int64_t num_docs() const { return static_cast<int64_t>(start_.size()); }

 private:
  void refill();
  std::vector<int64_t> start_, len_;  // the non-empty documents
  int64_t row_tokens_;
  BestFitState st_;
  std::vector<int64_t> buf_len_;      // lengths of st_.buffer's documents, same order
};

}  // namespace kiln::data
