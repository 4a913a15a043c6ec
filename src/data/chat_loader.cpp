// ChatLoader; see chat_loader.h. Stateless by design: the rows of an epoch are a seeded
// permutation, and batch k of rank r is computed from k and r alone, so the Cursor's batch count
// restores the exact stream (epoch, shuffle and packing remainder are all derived from it).
#include "data/chat_loader.h"

#include <algorithm>
#include <random>

#include "core/error.h"
#include "data/shard.h"

namespace kiln::data {

struct ChatLoader::Impl {
  ChatLoaderOptions o;
  std::vector<uint32_t> tokens;   // every shard, concatenated
  std::vector<uint8_t> mask;
  std::vector<int64_t> row_start, row_len;  // per row of an epoch (repeats expanded)
  int64_t epoch_tokens = 0;
  int64_t consumed = 0;
  // The permutation and token prefix sums of the epoch last asked for.
  int64_t cached_epoch = -1;
  std::vector<int64_t> perm, prefix;

  void load(const std::vector<ChatSource>& sources) {
    for (const auto& src : sources) {
      std::vector<std::pair<int64_t, int64_t>> rows;  // this source's rows, once
      for (const auto& path : src.shards) {
        ShardReader r(path, o.tokenizer_sha256, o.vocab_size);
        if (!r.info().has_loss_mask)
          throw Error("[data] " + path + " has no /loss_mask: it is not a chat shard",
                      "chat stages read shards written by ./prepare --chat (see README, chat stages)");
        const int64_t base = static_cast<int64_t>(tokens.size());
        const uint64_t n = r.info().num_tokens;
        tokens.resize(tokens.size() + n);
        mask.resize(mask.size() + n);
        r.read_tokens(0, n, tokens.data() + base);
        r.read_loss_mask(0, n, mask.data() + base);
        const auto off = r.doc_offsets();
        for (size_t d = 0; d + 1 < off.size(); ++d)
          if (off[d + 1] > off[d]) rows.emplace_back(base + int64_t(off[d]), int64_t(off[d + 1] - off[d]));
      }
      for (int64_t k = 0; k < src.repeat; ++k)
        for (const auto& [s, l] : rows) row_start.push_back(s), row_len.push_back(l), epoch_tokens += l;
    }
    if (row_start.empty()) throw Error("[data] the chat sources hold no conversations", "check data.train / data.val");
  }

  int64_t rows() const { return static_cast<int64_t>(row_start.size()); }

  // Fisher-Yates with a 64-bit Mersenne twister and an unbiased bounded draw: the same order on
  // every platform and standard library (std::shuffle's algorithm is unspecified).
  void ensure_epoch(int64_t e) {
    if (e == cached_epoch) return;
    const int64_t R = rows();
    perm.resize(R);
    for (int64_t i = 0; i < R; ++i) perm[i] = i;
    std::mt19937_64 g(o.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(e) + 1);
    for (int64_t i = R - 1; i > 0; --i) {
      const uint64_t bound = static_cast<uint64_t>(i) + 1, limit = UINT64_MAX - UINT64_MAX % bound;
      uint64_t x;
      do x = g(); while (x >= limit);
      std::swap(perm[i], perm[static_cast<int64_t>(x % bound)]);
    }
    prefix.assign(R + 1, 0);
    for (int64_t i = 0; i < R; ++i) prefix[i + 1] = prefix[i] + row_len[perm[i]];
    cached_epoch = e;
  }

  // The row at global index g of the endless shuffled row sequence.
  int64_t row_at(int64_t g) {
    ensure_epoch(g / rows());
    return perm[g % rows()];
  }

  // Tokens and masks [start, start+count) of the endless packed stream (epochs back to back).
  void read_stream(int64_t start, int64_t count, int64_t* ids, uint8_t* m) {
    while (count > 0) {
      const int64_t e = start / epoch_tokens, off = start % epoch_tokens;
      ensure_epoch(e);
      const int64_t i = std::upper_bound(prefix.begin(), prefix.end(), off) - prefix.begin() - 1;
      const int64_t row = perm[i], in_row = off - prefix[i];
      const int64_t n = std::min(count, row_len[row] - in_row);
      const int64_t s = row_start[row] + in_row;
      for (int64_t j = 0; j < n; ++j) ids[j] = tokens[s + j], m[j] = mask[s + j];
      ids += n, m += n, start += n, count -= n;
    }
  }

  // target = next token where its mask says trained (or always with train_on_all), else -1.
  int64_t target_of(int64_t id, uint8_t m) const { return (o.train_on_all || m) ? id : -1; }

  Batch packed(int64_t k) {
    const int64_t B = o.batch, T = o.seq_len, n = B * T + 1;
    std::vector<int64_t> ids(n);
    std::vector<uint8_t> m(n);
    read_stream((k * o.world + o.rank) * B * T, n, ids.data(), m.data());
    auto in = torch::empty({B, T}, torch::kInt64), tg = torch::empty({B, T}, torch::kInt64);
    int64_t* pi = in.data_ptr<int64_t>();
    int64_t* pt = tg.data_ptr<int64_t>();
    for (int64_t j = 0; j < B * T; ++j) pi[j] = ids[j], pt[j] = target_of(ids[j + 1], m[j + 1]);
    return {in, tg};
  }

  Batch padded(int64_t k) {
    const int64_t B = o.batch, T = o.seq_len;
    std::vector<int64_t> rows_b(B), len(B);
    int64_t width = 1;
    for (int64_t b = 0; b < B; ++b) {
      rows_b[b] = row_at((k * B + b) * o.world + o.rank);
      len[b] = std::min(row_len[rows_b[b]], T + 1) - 1;  // inputs of this row (cropped to T)
      width = std::max(width, len[b]);
    }
    auto in = torch::full({B, width}, o.pad_id, torch::kInt64), tg = torch::full({B, width}, -1, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) {
      int64_t* pi = in.data_ptr<int64_t>() + b * width;
      int64_t* pt = tg.data_ptr<int64_t>() + b * width;
      const int64_t s = row_start[rows_b[b]];
      for (int64_t j = 0; j < len[b]; ++j) pi[j] = tokens[s + j], pt[j] = target_of(tokens[s + j + 1], mask[s + j + 1]);
    }
    return {in, tg};
  }
};

ChatLoaderOptions chat_loader_options(const Config& cfg, bool sft, const tok::Tokenizer& tok, int rank, int world,
                                      torch::Device device) {
  ChatLoaderOptions o;
  o.batch = cfg.train.device_batch_size, o.seq_len = cfg.model.seq_len, o.rank = rank, o.world = world;
  o.seed = static_cast<uint64_t>(cfg.run.seed);
  o.padded = cfg.data.layout == "padded" || (cfg.data.layout == "auto" && sft);
  o.train_on_all = cfg.data.train_on == "all";
  o.pad_id = tok.bos_id();
  o.tokenizer_sha256 = tok.sha256();
  o.vocab_size = tok.vocab_size();
  o.device = device;
  return o;
}

ChatLoader::ChatLoader(const std::vector<ChatSource>& sources, const ChatLoaderOptions& o)
    : impl_(std::make_unique<Impl>()) {
  impl_->o = o;
  impl_->load(sources);
  if (!o.padded && impl_->epoch_tokens < o.batch * o.seq_len + 1)
    throw Error("[data] the chat sources hold " + std::to_string(impl_->epoch_tokens) +
                    " tokens, fewer than one packed batch (" + std::to_string(o.batch * o.seq_len + 1) + ")",
                "use more conversations or a smaller train.device_batch_size / model.seq_len");
}

ChatLoader::~ChatLoader() = default;

Batch ChatLoader::next() {
  Batch b = impl_->o.padded ? impl_->padded(impl_->consumed) : impl_->packed(impl_->consumed);
  ++impl_->consumed;
  if (!impl_->o.device.is_cpu()) {
    b.inputs = b.inputs.to(impl_->o.device);
    b.targets = b.targets.to(impl_->o.device);
  }
  return b;
}

Cursor ChatLoader::cursor() const {
  Cursor c;
  c.batches = impl_->consumed;
  const auto& o = impl_->o;
  if (o.padded) {
    const int64_t g = c.batches * o.batch * o.world;  // rows all ranks consumed
    c.epoch = g / impl_->rows();
    c.position = g % impl_->rows();
  } else {
    const int64_t g = c.batches * o.world * o.batch * o.seq_len;
    c.epoch = g / impl_->epoch_tokens;
    c.position = g % impl_->epoch_tokens;
  }
  return c;
}

void ChatLoader::restore(const Cursor& c) { impl_->consumed = c.batches; }

int64_t ChatLoader::num_rows() const { return impl_->rows(); }
int64_t ChatLoader::epoch_tokens() const { return impl_->epoch_tokens; }

int64_t ChatLoader::steps_for_epochs(double epochs, int64_t rows_per_step, int64_t tokens_per_step) const {
  const double per_epoch = impl_->o.padded ? double(impl_->rows()) / double(rows_per_step)
                                           : double(impl_->epoch_tokens) / double(tokens_per_step);
  return std::max<int64_t>(1, static_cast<int64_t>(epochs * per_epoch));
}

}  // namespace kiln::data
