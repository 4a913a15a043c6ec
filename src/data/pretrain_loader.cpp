// PretrainLoader and the token streams; see pretrain_loader.h. The prefetch thread only ever
// reads windows k, k+1, ... in order from the cursor it was started at, so what next() returns
// depends on the cursor alone, never on timing.
#include "data/pretrain_loader.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "core/error.h"
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

 private:
  std::vector<ShardReader> readers_;
  std::vector<int64_t> starts_;
  int64_t size_ = 0;
};

class MemoryStream : public TokenStream {
 public:
  explicit MemoryStream(std::vector<int64_t> t) : t_(std::move(t)) {}
  int64_t size() const override { return static_cast<int64_t>(t_.size()); }
  void read(int64_t start, int64_t count, int64_t* out) const override {
    std::copy(t_.begin() + start, t_.begin() + start + count, out);
  }

 private:
  std::vector<int64_t> t_;
};

}  // namespace

std::shared_ptr<TokenStream> shard_stream(const std::vector<std::string>& paths, const std::string& sha,
                                          int64_t vocab) {
  return std::make_shared<ShardStream>(paths, sha, vocab);
}
std::shared_ptr<TokenStream> memory_stream(std::vector<int64_t> tokens) {
  return std::make_shared<MemoryStream>(std::move(tokens));
}

struct PretrainLoader::Impl {
  std::shared_ptr<TokenStream> stream;
  int64_t B, T;
  int rank, world;
  torch::Device device;
  size_t depth;
  bool pin;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<torch::Tensor> ready;  // CPU (pinned on CUDA) windows of B*T+1 tokens
  std::exception_ptr failure;
  int64_t consumed = 0;             // batches handed out by next()
  bool stop = false;
  std::thread worker;

  Impl(std::shared_ptr<TokenStream> s, int64_t b, int64_t t, int r, int w, torch::Device d, int prefetch)
      : stream(std::move(s)), B(b), T(t), rank(r), world(w), device(d),
        depth(static_cast<size_t>(std::max(1, prefetch))), pin(d.is_cuda()) {
    if (stream->size() < B * T + 1)
      throw Error("the token stream has " + std::to_string(stream->size()) + " tokens, fewer than one batch (" +
                      std::to_string(B * T + 1) + ")",
                  "use more data or a smaller train.device_batch_size / model.seq_len");
  }

  // Stream offset of the window this rank reads as its k-th batch (windows wrap around).
  int64_t window_start(int64_t k) const {
    const int64_t window = k * world + rank;
    return (window * B * T) % stream->size();
  }

  torch::Tensor read_window(int64_t k) const {
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
    return buf;
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
        torch::Tensor w;
        try {
          w = read_window(k);
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu);
          failure = std::current_exception();
          cv.notify_all();
          return;
        }
        std::lock_guard<std::mutex> lk(mu);
        ready.push_back(std::move(w));
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
                               int world, torch::Device device, int prefetch)
    : impl_(std::make_unique<Impl>(std::move(stream), batch, seq_len, rank, world, device, prefetch)) {
  impl_->start_worker(0);
}

PretrainLoader::~PretrainLoader() { impl_->stop_worker(); }

Batch PretrainLoader::next() {
  torch::Tensor w;
  {
    std::unique_lock<std::mutex> lk(impl_->mu);
    impl_->cv.wait(lk, [&] { return !impl_->ready.empty() || impl_->failure; });
    if (impl_->failure) std::rethrow_exception(impl_->failure);
    w = std::move(impl_->ready.front());
    impl_->ready.pop_front();
    ++impl_->consumed;
  }
  impl_->cv.notify_all();
  const int64_t n = impl_->B * impl_->T;
  Batch b;
  b.inputs = w.narrow(0, 0, n).view({impl_->B, impl_->T});
  b.targets = w.narrow(0, 1, n).view({impl_->B, impl_->T});
  if (impl_->device.is_cuda()) {
    b.inputs = b.inputs.to(impl_->device, /*non_blocking=*/true);
    b.targets = b.targets.to(impl_->device, /*non_blocking=*/true);
  }
  return b;
}

Cursor PretrainLoader::cursor() const {
  Cursor c;
  c.batches = impl_->consumed;
  const int64_t g = (c.batches * impl_->world + impl_->rank) * impl_->B * impl_->T;
  c.epoch = g / impl_->stream->size();
  c.position = g % impl_->stream->size();
  return c;
}

void PretrainLoader::restore(const Cursor& c) {
  impl_->stop_worker();
  impl_->failure = nullptr;
  impl_->consumed = c.batches;
  impl_->start_worker(c.batches);
}

int64_t PretrainLoader::stream_tokens() const { return impl_->stream->size(); }

}  // namespace kiln::data
