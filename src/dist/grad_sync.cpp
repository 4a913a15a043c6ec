// GradSync: the bucketed, overlapped gradient all-reduce (DDP) behind grad_sync.h, built the way
// c10d's Reducer is: one post-hook per parameter on its AccumulateGrad node, flat
// buckets whose views are the .grad tensors, and buckets launched strictly in order.
#include "dist/grad_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "dist/dist.h"

namespace kiln::dist {

// Note [GradSync protocol]
// * Layout. Parameters are taken in reverse registration order (roughly the order backward
//   produces their gradients), grouped by (dtype, device), and packed into flat buckets of about
//   bucket_mb; a parameter larger than that gets a bucket of its own. Each parameter's slot starts
//   at a multiple of 16 elements (64 B in fp32) so the views stay aligned for vector kernels.
//   param.grad is set to an alias of its slot (same storage, made with set_ rather than as a
//   view, so that the optimizer's zero_grad may detach_() it), so AccumulateGrad's in-place
//   `grad += new` writes straight into the bucket and the reduced bucket *is* the gradient:
//   nothing is copied back.
// * Hooks. A post-hook on each parameter's AccumulateGrad node runs after the gradient has been
//   accumulated into .grad. If .grad is no longer the bucket view (the optimizer's
//   zero_grad(set_to_none) dropped it, so AccumulateGrad stole a fresh tensor) the hook copies it
//   into the slot and re-points .grad. This local copy is the only work on a non-armed micro-step.
// * Launch. On the armed backward each hook decrements its bucket's pending count; when the
//   bucket at the head of the queue (next_bucket) reaches 0, it and every following complete
//   bucket are launched (async all-reduce, ReduceOp::Avg). Launching strictly in bucket order
//   makes every rank issue the same collectives in the same order even when autograd finishes
//   gradients in a slightly different order on different ranks (c10d's mark_bucket_ready).
// * Accumulation. With k micro-steps, the first k-1 backwards only sum into the buckets; the
//   armed k-th adds its part and reduces the sum once. Avg over N ranks of per-rank sums of
//   (loss_m / k) is the gradient of the mean loss over all N·k micro-batches.
// * finish() waits on every bucket (CPU: blocks; NCCL: the current stream waits on an event),
//   then names any parameter whose hook did not fire (it got no gradient: unused in the loss).
// * No queue_callback: the engine's final callback is how c10d's Reducer finalises without an
//   explicit call; kiln's loop calls finish() itself, and on CUDA the engine has already made the
//   caller's stream wait on the leaf streams when backward() returns, so finish() on the caller's
//   current stream orders the optimizer after both the gradients and the reductions.
// * Threads. Hooks run on the autograd thread: the caller's thread on CPU (so MpiComm's
//   FUNNELED rule holds), a per-device worker on CUDA (NCCL is thread-safe per communicator
//   when calls are serialised, which mu does).
// * ZeRO-1 (owners given). The bucket key also holds the owner, so a bucket never mixes two
//   owners' parameters, and a complete bucket is reduced (ReduceOp::Avg) to its owner instead of
//   all-reduced: the same launch order and overlap, half the traffic of an all-reduce per byte
//   (a reduce moves each byte once, an all-reduce twice). Non-owners keep their local sums.
struct GradSync::Impl {
  struct Slot {
    int64_t bucket = -1;
    torch::Tensor view;
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<int64_t> params;  // indices into Impl::params, in slot order
    int owner = -1;               // ZeRO-1: the rank the bucket is reduced to; -1: all-reduce
    int64_t pending = 0;
    std::shared_ptr<Work> work;
  };
  // A ~10-line hook of our own (not LambdaPostHook, whose constructor keeps changing).
  struct Hook final : torch::autograd::FunctionPostHook {
    Hook(Impl* impl, int64_t index) : impl_(impl), index_(index) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list& /*inputs*/) override {
      impl_->on_grad(index_);
      return outputs;
    }
    Impl* impl_;
    int64_t index_;
  };

  Impl(std::vector<torch::Tensor> p, std::vector<std::string> n, Comm& c, double bucket_mb, bool ov,
       std::vector<int> own)
      : params(std::move(p)), names(std::move(n)), owners(std::move(own)), comm(c), overlap(ov) {
    TORCH_CHECK(owners.empty() || owners.size() == params.size(), "GradSync: ", owners.size(), " owners for ",
                params.size(), " parameters");
    for (int o : owners) TORCH_CHECK(o >= 0 && o < comm.world(), "GradSync: owner ", o, " is not a rank");
    if (bucket_mb <= 0)
      throw Error("[dist] GradSync bucket size must be > 0 MB, got " + std::to_string(bucket_mb),
                  "use about 25 (MB), as PyTorch DDP does");
    verify_across_ranks();
    build_buckets(static_cast<int64_t>(bucket_mb * 1024 * 1024));
    register_hooks();
  }

  ~Impl() {
    for (auto& [acc, key] : hooks) acc->del_post_hook(key);
  }

  // Every rank must hold the same parameters, or the buckets (and so the collectives) differ.
  void verify_across_ranks() {
    std::vector<std::string> mine;
    std::string all;
    for (size_t i = 0; i < params.size(); ++i) {
      mine.push_back(describe(params[i]));
      all += mine.back() + "\n";
    }
    const std::string root = broadcast_string(all);
    std::vector<std::string> theirs;
    std::istringstream in(root);
    for (std::string line; std::getline(in, line);) theirs.push_back(line);
    std::string detail;
    if (theirs.size() != mine.size()) {
      detail = "this rank has " + std::to_string(mine.size()) + " parameters, rank 0 has " +
               std::to_string(theirs.size());
    } else {
      for (size_t i = 0; i < mine.size() && detail.empty(); ++i)
        if (mine[i] != theirs[i])
          detail = "parameter '" + names[i] + "' is " + mine[i] + " here but " + theirs[i] + " on rank 0";
    }
    const std::vector<int64_t> bad = all_gather(int64_t{!detail.empty()});
    std::string ranks;
    for (size_t r = 0; r < bad.size(); ++r)
      if (bad[r]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (ranks.empty()) return;
    throw Error("[dist] GradSync: the model's parameters differ across ranks: rank(s) " + ranks +
                    " differ from rank 0" + (detail.empty() ? "" : " (" + detail + ")"),
                "every rank must build the same model from the same config; look for a model.* override "
                "or a code path that depends on the rank");
  }

  static std::string describe(const torch::Tensor& t) {
    std::ostringstream s;
    s << t.scalar_type() << " " << t.sizes() << (t.requires_grad() ? "" : " (frozen)");
    return s.str();
  }

  void build_buckets(int64_t cap_bytes) {
    constexpr int64_t kAlign = 16;
    struct Open {
      std::vector<int64_t> params;
      int64_t bytes = 0;
    };
    std::map<std::string, Open> open;  // one bucket being filled per (dtype, device)
    std::vector<std::vector<int64_t>> closed;
    for (int64_t i = static_cast<int64_t>(params.size()) - 1; i >= 0; --i) {
      const torch::Tensor& p = params[i];
      if (!p.requires_grad()) continue;
      TORCH_CHECK(p.is_leaf(), "GradSync: parameter '", names[i], "' is not a leaf tensor");
      std::ostringstream key;
      key << p.scalar_type() << "@" << p.device();
      if (!owners.empty()) key << "#" << owners[i];
      Open& o = open[key.str()];
      const int64_t bytes = p.numel() * p.element_size();
      if (!o.params.empty() && o.bytes + bytes > cap_bytes) {
        closed.push_back(std::move(o.params));
        o = Open{};
      }
      o.params.push_back(i);
      o.bytes += bytes;
    }
    for (auto& [k, o] : open)
      if (!o.params.empty()) closed.push_back(std::move(o.params));
    // Bucket order follows each bucket's first parameter in reverse registration order.
    std::sort(closed.begin(), closed.end(), [](const auto& a, const auto& b) { return a.front() > b.front(); });

    slots.resize(params.size());
    for (auto& members : closed) {
      Bucket b;
      int64_t total = 0;
      for (int64_t i : members) total += (params[i].numel() + kAlign - 1) / kAlign * kAlign;
      b.flat = torch::zeros({total}, params[members.front()].options().requires_grad(false));
      int64_t off = 0;
      for (int64_t i : members) {
        torch::NoGradGuard ng;
        const torch::Tensor& p = params[i];
        Slot& s = slots[i];
        s.bucket = static_cast<int64_t>(buckets.size());
        // An alias of the slot, not an autograd view: LibTorch's Optimizer::zero_grad detach_()es
        // every grad, which throws on a view ("Can't detach views in-place").
        s.view = torch::empty({0}, b.flat.options()).set_(b.flat.storage(), off, p.sizes());
        torch::Tensor& g = p.mutable_grad();
        if (g.defined()) s.view.copy_(g);
        g = s.view;
        off += (p.numel() + kAlign - 1) / kAlign * kAlign;
      }
      b.owner = owners.empty() ? -1 : owners[members.front()];
      b.params = std::move(members);
      buckets.push_back(std::move(b));
    }
  }

  void register_hooks() {
    for (size_t i = 0; i < params.size(); ++i) {
      if (slots[i].bucket < 0) continue;
      // The tensor keeps only a weak_ptr to its AccumulateGrad node: hold it, or the hook dies.
      std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(params[i]);
      TORCH_CHECK(acc, "GradSync: no gradient accumulator for '", names[i], "'");
      uintptr_t key = acc->add_post_hook(std::make_unique<Hook>(this, static_cast<int64_t>(i)));
      hooks.emplace_back(std::move(acc), key);
    }
  }

  // See Note [GradSync protocol].
  void on_grad(int64_t i) {
    std::lock_guard<std::mutex> l(mu);
    Slot& s = slots[i];
    {
      torch::NoGradGuard ng;
      torch::Tensor& g = params[i].mutable_grad();
      if (!g.defined()) {  // no gradient since the grads were set to None: the slot holds zeros
        s.view.zero_();
        g = s.view;
      } else if (!(g.data_ptr() == s.view.data_ptr() && g.sizes() == s.view.sizes() &&
                   g.strides() == s.view.strides())) {
        s.view.copy_(g);
        g = s.view;
      }
    }
    if (!armed) return;
    TORCH_CHECK(!ready[i], "GradSync: parameter '", names[i], "' received its gradient twice in one armed backward");
    ready[i] = 1;
    Bucket& b = buckets[s.bucket];
    if (--b.pending == 0 && overlap) launch_ready();
    else comm.progress();
  }

  // Launch every complete bucket at the head of the queue, in order.
  void launch_ready() {
    while (next_bucket < static_cast<int64_t>(buckets.size()) && buckets[next_bucket].pending == 0) {
      Bucket& b = buckets[next_bucket++];
      b.work = b.owner < 0 ? comm.all_reduce(b.flat, ReduceOp::Avg, /*async=*/true)
                           : comm.reduce(b.flat, ReduceOp::Avg, b.owner, /*async=*/true);
    }
  }

  void arm() {
    std::lock_guard<std::mutex> l(mu);
    TORCH_CHECK(!armed, "GradSync::arm() called twice without finish() in between");
    for (auto& b : buckets) {
      b.pending = static_cast<int64_t>(b.params.size());
      b.work.reset();
    }
    ready.assign(params.size(), 0);
    next_bucket = 0;
    armed = true;
  }

  void finish() {
    std::lock_guard<std::mutex> l(mu);
    TORCH_CHECK(armed, "GradSync::finish() without arm() before the last micro-step's backward");
    launch_ready();  // overlap=false: everything is launched here, after backward
    for (auto& b : buckets)
      if (b.work) b.work->wait();
    armed = false;
    std::string missing;
    int n = 0;
    for (size_t i = 0; i < params.size(); ++i)
      if (slots[i].bucket >= 0 && !ready[i] && n++ < 5) missing += (missing.empty() ? "" : ", ") + names[i];
    if (n > 0)
      throw Error("[dist] GradSync: " + std::to_string(n) + " parameter(s) got no gradient in the armed backward (" +
                      missing + (n > 5 ? ", ..." : "") + "), so their buckets were never reduced",
                  "every trainable parameter must take part in the loss; freeze unused ones "
                  "(requires_grad=false) before building GradSync, and call arm() right before the last "
                  "micro-step's backward");
  }

  void zero_grad() {
    std::lock_guard<std::mutex> l(mu);
    torch::NoGradGuard ng;
    for (auto& b : buckets) b.flat.zero_();
    for (size_t i = 0; i < params.size(); ++i)
      if (slots[i].bucket >= 0) params[i].mutable_grad() = slots[i].view;
  }

  std::vector<torch::Tensor> params;
  std::vector<std::string> names;
  std::vector<int> owners;
  Comm& comm;
  bool overlap;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks;
  std::mutex mu;
  bool armed = false;
  int64_t next_bucket = 0;
  std::vector<char> ready;
};

namespace {
std::vector<std::string> index_names(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back("param[" + std::to_string(i) + "]");
  return out;
}
}  // namespace

GradSync::GradSync(std::vector<torch::Tensor> params, Comm& comm, double bucket_mb, Overlap overlap,
                   const Ownership& ownership) {
  auto names = index_names(params.size());
  impl_ = std::make_unique<Impl>(std::move(params), std::move(names), comm, bucket_mb,
                                 overlap == Overlap::WithBackward, ownership.owners());
}

GradSync::GradSync(const torch::OrderedDict<std::string, torch::Tensor>& named_params, Comm& comm,
                   double bucket_mb, Overlap overlap, const Ownership& ownership) {
  impl_ = std::make_unique<Impl>(named_params.values(), named_params.keys(), comm, bucket_mb,
                                 overlap == Overlap::WithBackward, ownership.owners());
}

GradSync::~GradSync() = default;
void GradSync::arm() { impl_->arm(); }
void GradSync::finish() { impl_->finish(); }
void GradSync::zero_grad() { impl_->zero_grad(); }
int64_t GradSync::num_buckets() const { return static_cast<int64_t>(impl_->buckets.size()); }

std::vector<std::string> GradSync::bucket_params(int64_t b) const {
  TORCH_CHECK(b >= 0 && b < num_buckets(), "bucket index ", b, " out of range");
  std::vector<std::string> out;
  for (int64_t i : impl_->buckets[b].params) out.push_back(impl_->names[i]);
  return out;
}

}  // namespace kiln::dist
