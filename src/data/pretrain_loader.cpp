// PretrainLoader and the token streams; see pretrain_loader.h. The prefetch thread only ever
// makes batches k, k+1, ... in order from the cursor it was started at (best-fit: from the
// packing state restored with it), so what next() returns depends on the cursor alone, never on
// timing. Each best-fit batch carries the packing state after it: cursor() is the state after
// the last batch handed out, however far the thread has packed ahead.
#include "data/pretrain_loader.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "data/bestfit.h"
#include "data/shard.h"

namespace kiln::data {
namespace {

class ShardStream : public TokenStream {
 public:
  ShardStream(const std::vector<std::string>& paths, const std::string& sha, int64_t vocab) {
    if (paths.empty()) throw Error("no token shards given");
    int64_t total = 0;
    for (const auto& p : paths) {
      readers_.emplace_back(p, sha, vocab);
      starts_.push_back(total);
      total += static_cast<int64_t>(readers_.back().info().num_tokens);
    }
    size_ = total;
  }
  int64_t size() const override { return size_; }
  void read(int64_t start, int64_t count, int64_t* out) const override {
    // Find the shard holding `start`, then read across shard boundaries.
    size_t s = std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin() - 1;
    std::vector<uint32_t> buf;
    while (count > 0) {
      const int64_t off = start - starts_[s];
      const int64_t n = std::min<int64_t>(count, static_cast<int64_t>(readers_[s].info().num_tokens) - off);
      buf.resize(static_cast<size_t>(n));
      readers_[s].read_tokens(static_cast<uint64_t>(off), static_cast<uint64_t>(n), buf.data());
      std::copy(buf.begin(), buf.end(), out);
      out += n, start += n, count -= n, ++s;
    }
  }
  std::vector<int64_t> doc_bounds() const override {
    std::vector<int64_t> b;
    for (size_t s = 0; s < readers_.size(); ++s) {
      const auto off = readers_[s].doc_offsets();
      for (size_t d = 0; d + 1 < off.size(); ++d) b.push_back(starts_[s] + static_cast<int64_t>(off[d]));
    }
    b.push_back(size_);
    return b;
  }
  int64_t bos_id() const override { return readers_.front().info().bos_id; }
  std::string locate(int64_t pos) const override {
    const size_t s = std::upper_bound(starts_.begin(), starts_.end(), pos) - starts_.begin() - 1;
    return readers_[s].info().path + ", token " + std::to_string(pos - starts_[s]);
  }

 private:
  std::vector<ShardReader> readers_;
  std::vector<int64_t> starts_;
  int64_t size_ = 0;
};

class MemoryStream : public TokenStream {
 public:
  MemoryStream(std::vector<int64_t> t, std::vector<int64_t> bounds, int64_t bos)
      : t_(std::move(t)), bounds_(std::move(bounds)), bos_(bos) {}
  int64_t size() const override { return static_cast<int64_t>(t_.size()); }
  void read(int64_t start, int64_t count, int64_t* out) const override {
    std::copy(t_.begin() + start, t_.begin() + start + count, out);
  }
  std::vector<int64_t> doc_bounds() const override { return bounds_; }
  int64_t bos_id() const override { return bos_; }

 private:
  std::vector<int64_t> t_, bounds_;
  int64_t bos_;
};

}  // namespace

std::shared_ptr<TokenStream> shard_stream(const std::vector<std::string>& paths, const std::string& sha,
                                          int64_t vocab) {
  return std::make_shared<ShardStream>(paths, sha, vocab);
}
std::shared_ptr<TokenStream> memory_stream(std::vector<int64_t> tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  return std::make_shared<MemoryStream>(std::move(tokens), std::vector<int64_t>{0, n}, -1);
}
std::shared_ptr<TokenStream> memory_stream(std::vector<int64_t> tokens, std::vector<int64_t> bounds, int64_t bos) {
  return std::make_shared<MemoryStream>(std::move(tokens), std::move(bounds), bos);
}

struct PretrainLoader::Impl {
  // One prefetched batch. Stream: a window of B*T+1 tokens; best-fit: (2, B, T) inputs and
  // targets, the packing state after the batch, and the crops of its global rows.
  struct Item {
    torch::Tensor t;
    BestFitState after;
    int64_t cropped = -1;
  };

  std::shared_ptr<TokenStream> stream;
  int64_t B, T;
  int rank, world;
  torch::Device device;
  Packing packing;
  size_t depth;
  bool pin;
  std::unique_ptr<BestFitPacker> packer;  // best-fit only; the worker's while it runs
  BestFitState handed;                    // best-fit: the state after the last batch next() returned

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> ready;  // CPU (pinned on CUDA) batches
  std::exception_ptr failure;
  int64_t consumed = 0;             // batches handed out by next()
  bool stop = false;
  std::thread worker;

  Impl(std::shared_ptr<TokenStream> s, int64_t b, int64_t t, int r, int w, torch::Device d, Packing p, int prefetch)
      : stream(std::move(s)), B(b), T(t), rank(r), world(w), device(d), packing(p),
        depth(static_cast<size_t>(std::max(1, prefetch))), pin(d.is_cuda()) {
    if (packing == Packing::BestFit) {
      packer = std::make_unique<BestFitPacker>(stream->doc_bounds(), T + 1);
      // Best-fit keeps only the first T+1 tokens of a document longer than a row; when every
      // document is, each row is the start of the shortest buffered one, over and over.
      if (shortest_doc() > T + 1)
        throw Error("[data] data.layout bestfit: every one of the " + std::to_string(packer->num_docs()) +
                        " documents is longer than a row (" + std::to_string(T + 1) +
                        " tokens), so best-fit would train on their first " + std::to_string(T + 1) + " tokens only",
                    "use data.layout packed (the token stream) for data of few long documents, or make the "
                    "shards from JSONL records (./prepare: one document per record)");
      handed = packer->state();
      return;
    }
    if (stream->size() < B * T + 1)
      throw Error("the token stream has " + std::to_string(stream->size()) + " tokens, fewer than one batch (" +
                      std::to_string(B * T + 1) + ")",
                  "use more data or a smaller train.device_batch_size / model.seq_len");
  }

  int64_t shortest_doc() const {
    const auto b = stream->doc_bounds();
    int64_t m = INT64_MAX;
    for (size_t i = 0; i + 1 < b.size(); ++i)
      if (b[i + 1] > b[i]) m = std::min(m, b[i + 1] - b[i]);
    return m;
  }

  // Stream offset of the window this rank reads as its k-th batch (windows wrap around).
  int64_t window_start(int64_t k) const {
    const int64_t window = k * world + rank;
    return (window * B * T) % stream->size();
  }

  Item read_window(int64_t k) const {
    auto opts = torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pin);
    torch::Tensor buf = torch::empty({B * T + 1}, opts);
    int64_t* out = buf.data_ptr<int64_t>();
    int64_t start = window_start(k), need = B * T + 1;
    const int64_t L = stream->size();
    while (need > 0) {  // at most one wrap for streams longer than a window
      const int64_t n = std::min(need, L - start);
      stream->read(start, n, out);
      out += n, need -= n, start = 0;
    }
    return {buf};
  }

  // Best-fit: packs the global rows of batches k*world .. k*world+world-1 (every rank's k-th
  // batch) and reads the tokens of this rank's B rows.
  Item pack_batch() {
    auto opts = torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pin);
    torch::Tensor buf = torch::empty({2, B, T}, opts);
    int64_t* in = buf.data_ptr<int64_t>();
    int64_t* tg = in + B * T;
    std::vector<int64_t> row(static_cast<size_t>(T + 1));
    std::vector<RowPiece> pieces;
    const int64_t bos = stream->bos_id();
    int64_t cropped = 0;
    for (int w = 0; w < world; ++w)
      for (int64_t b = 0; b < B; ++b) {
        pieces.clear();
        cropped += packer->pack_row(pieces);
        if (w != rank) continue;
        int64_t pos = 0;
        for (const auto& p : pieces) {
          stream->read(p.start, p.len, row.data() + pos);
          if (bos >= 0 && row[pos] != bos)
            throw Error("[data] data.layout bestfit: the document at " + stream->locate(p.start) +
                            " starts with token " + std::to_string(row[pos]) + ", not <|bos|> (" +
                            std::to_string(bos) + ")",
                        "best-fit rows start at documents' <|bos|>: remake the shards with ./prepare, or use "
                        "data.layout packed");
          pos += p.len;
        }
        std::copy(row.begin(), row.end() - 1, in + b * T);
        std::copy(row.begin() + 1, row.end(), tg + b * T);
      }
    return {buf, packer->state(), cropped};
  }

  void start_worker(int64_t from) {
    stop = false;
    worker = std::thread([this, from] {
      for (int64_t k = from;; ++k) {
        {
          std::unique_lock<std::mutex> lk(mu);
          cv.wait(lk, [&] { return stop || ready.size() < depth; });
          if (stop) return;
        }
        Item it;
        try {
          it = packer ? pack_batch() : read_window(k);
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu);
          failure = std::current_exception();
          cv.notify_all();
          return;
        }
        std::lock_guard<std::mutex> lk(mu);
        ready.push_back(std::move(it));
        cv.notify_all();
      }
    });
  }

  void stop_worker() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
    ready.clear();
  }
};

PretrainLoader::PretrainLoader(std::shared_ptr<TokenStream> stream, int64_t batch, int64_t seq_len, int rank,
                               int world, torch::Device device, Packing packing, int prefetch)
    : impl_(std::make_unique<Impl>(std::move(stream), batch, seq_len, rank, world, device, packing, prefetch)) {
  impl_->start_worker(0);
}

PretrainLoader::~PretrainLoader() { impl_->stop_worker(); }

Batch PretrainLoader::next() {
  Impl::Item it;
  {
    std::unique_lock<std::mutex> lk(impl_->mu);
    impl_->cv.wait(lk, [&] { return !impl_->ready.empty() || impl_->failure; });
    if (impl_->failure) std::rethrow_exception(impl_->failure);
    it = std::move(impl_->ready.front());
    impl_->ready.pop_front();
    ++impl_->consumed;
    if (impl_->packer) impl_->handed = std::move(it.after);
  }
  impl_->cv.notify_all();
  const int64_t n = impl_->B * impl_->T;
  Batch b;
  if (impl_->packer) {
    b.inputs = it.t[0];
    b.targets = it.t[1];
    b.cropped = it.cropped;
  } else {
    b.inputs = it.t.narrow(0, 0, n).view({impl_->B, impl_->T});
    b.targets = it.t.narrow(0, 1, n).view({impl_->B, impl_->T});
  }
  if (impl_->device.is_cuda()) {
    b.inputs = b.inputs.to(impl_->device, /*non_blocking=*/true);
    b.targets = b.targets.to(impl_->device, /*non_blocking=*/true);
  }
  return b;
}

Cursor PretrainLoader::cursor() const {
  Cursor c;
  c.batches = impl_->consumed;
  if (impl_->packer) {  // epoch and position count documents
    std::lock_guard<std::mutex> lk(impl_->mu);
    const BestFitState& st = impl_->handed;
    c.epoch = st.next_doc / st.docs;
    c.position = st.next_doc % st.docs;
    c.packing = st.to_json();
    return c;
  }
  const int64_t g = (c.batches * impl_->world + impl_->rank) * impl_->B * impl_->T;
  c.epoch = g / impl_->stream->size();
  c.position = g % impl_->stream->size();
  return c;
}

void PretrainLoader::restore(const Cursor& c) {
  impl_->stop_worker();
  impl_->failure = nullptr;
  if (impl_->packer) {
    // The packing state is global (all ranks' rows), so any world size continues it: it must
    // stand where this rank's batch count says, c.batches x world x B rows.
    BestFitState st;
    st.docs = impl_->packer->num_docs();
    if (!c.packing.is_null()) st = BestFitState::from_json(c.packing, "the loader cursor");
    const int64_t rows = c.batches * impl_->world * impl_->B;
    if (st.rows != rows)
      throw Error("[data] the loader cursor's best-fit state stands at global row " + std::to_string(st.rows) +
                      ", but " + std::to_string(c.batches) + " batches x " + std::to_string(impl_->world) +
                      " ranks x " + std::to_string(impl_->B) + " rows is " + std::to_string(rows),
                  c.packing.is_null() ? "the checkpoint was written with data.layout packed: resume with it"
                                      : "keep train.device_batch_size when resuming (the rows per step must split "
                                        "evenly over the ranks)");
    impl_->packer->set_state(st);
    impl_->handed = impl_->packer->state();
  } else if (!c.packing.is_null()) {
    throw Error("[data] the loader cursor holds a best-fit packing state, but this run reads the token stream",
                "resume with the checkpoint's data.layout (bestfit)");
  }
  impl_->consumed = c.batches;
  impl_->start_worker(c.batches);
}

int64_t PretrainLoader::stream_tokens() const { return impl_->stream->size(); }

}  // namespace kiln::data
