// GradSync under `mpirun -np 2` on CPU (MpiComm), against references computed without it: grads
// equal the mean of the per-rank grads (all-gathered), one SGD step on 2 ranks x batch B equals
// one process with batch 2B, several buckets, gradient accumulation, errors, hook removal.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/comm.h"
#include "dist/dist.h"
#include "dist/grad_sync.h"
#include "dist/zero1.h"

#include <algorithm>
#include <set>

namespace {

using kiln::dist::Comm;
using kiln::dist::GradSync;
using kiln::dist::ReduceOp;
using kiln::dist::Work;

// Forwards to MpiComm and counts the all-reduces, to see when communication happens.
class CountingComm : public Comm {
 public:
  CountingComm() : inner_(kiln::dist::make_comm("mpi", torch::kCPU, 60)) {}
  std::shared_ptr<Work> all_reduce(torch::Tensor& t, ReduceOp op, bool async) override {
    ++all_reduces;
    return inner_->all_reduce(t, op, async);
  }
  std::shared_ptr<Work> reduce(torch::Tensor& t, ReduceOp op, int root, bool async) override {
    ++reduces;
    return inner_->reduce(t, op, root, async);
  }
  std::shared_ptr<Work> reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op,
                                       bool async) override {
    return inner_->reduce_scatter(in, out, op, async);
  }
  std::shared_ptr<Work> all_gather(const torch::Tensor& in, torch::Tensor& out, bool async) override {
    return inner_->all_gather(in, out, async);
  }
  void broadcast(torch::Tensor& t, int root) override { inner_->broadcast(t, root); }
  void barrier() override { inner_->barrier(); }
  int rank() const override { return inner_->rank(); }
  int world() const override { return inner_->world(); }
  std::string name() const override { return "counting-mpi"; }
  void progress() override { inner_->progress(); }
  int all_reduces = 0;
  int reduces = 0;

 private:
  std::unique_ptr<Comm> inner_;
};

// The same MLP on every rank (same seed); `hidden` lets a test make the ranks differ.
torch::nn::Sequential mlp(int64_t hidden = 16) {
  torch::manual_seed(0);
  return torch::nn::Sequential(torch::nn::Linear(8, hidden), torch::nn::Tanh(), torch::nn::Linear(hidden, 16),
                               torch::nn::Tanh(), torch::nn::Linear(16, 4));
}

struct Batch {
  torch::Tensor x, y;
};
// The global batch of `rows` rows, identical on every rank; rank r uses a slice of it.
Batch data(int64_t rows, uint64_t seed = 1) {
  torch::manual_seed(seed);
  return {torch::randn({rows, 8}), torch::randn({rows, 4})};
}
torch::Tensor loss(torch::nn::Sequential& m, const torch::Tensor& x, const torch::Tensor& y) {
  return torch::mse_loss(m->forward(x), y);
}

// Each rank's local grads, all-gathered and averaged: the reference for GradSync.
std::vector<torch::Tensor> mean_over_ranks(Comm& c, const std::vector<torch::Tensor>& grads) {
  std::vector<torch::Tensor> out;
  for (const auto& g : grads) {
    auto flat = g.contiguous().view({-1});
    auto all = torch::empty({c.world() * flat.numel()});
    c.all_gather(flat, all);
    out.push_back(all.view({c.world(), -1}).mean(0).view(g.sizes()));
  }
  return out;
}

std::vector<torch::Tensor> grads_of(torch::nn::Sequential& m) {
  std::vector<torch::Tensor> g;
  for (auto& p : m->parameters()) g.push_back(p.grad().clone());
  return g;
}

TEST(GradSync, GradsAreMeanOfPerRankGrads) {
  CountingComm c;
  const int r = c.rank();
  const int64_t B = 5;
  Batch d = data(2 * B);
  auto x = d.x.narrow(0, r * B, B), y = d.y.narrow(0, r * B, B);

  auto ref_model = mlp();
  loss(ref_model, x, y).backward();
  auto want = mean_over_ranks(c, grads_of(ref_model));

  auto model = mlp();
  GradSync sync(model->named_parameters(), c);
  EXPECT_EQ(sync.num_buckets(), 1);
  sync.zero_grad();
  sync.arm();
  loss(model, x, y).backward();
  EXPECT_EQ(c.all_reduces, 1);  // launched from the hook, during backward
  sync.finish();
  auto got = model->parameters();
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(torch::equal(got[i].grad(), want[i])) << "param " << i;  // same sum, same division: bit-equal
  // The ranks really differ (otherwise the mean would be trivially each rank's own grads).
  EXPECT_FALSE(torch::equal(grads_of(ref_model)[0], want[0]));
}

TEST(GradSync, OneStepOnTwoRanksEqualsDoubleBatchOnOne) {
  CountingComm c;
  const int r = c.rank();
  const int64_t B = 8;
  Batch d = data(2 * B, 7);

  auto model = mlp();
  GradSync sync(model->named_parameters(), c);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1));
  sync.zero_grad();
  sync.arm();
  loss(model, d.x.narrow(0, r * B, B), d.y.narrow(0, r * B, B)).backward();
  sync.finish();
  opt.step();

  auto one = mlp();  // one process, batch 2B, no GradSync
  torch::optim::SGD opt1(one->parameters(), torch::optim::SGDOptions(0.1));
  opt1.zero_grad();
  loss(one, d.x, d.y).backward();
  opt1.step();

  // Tolerance: the two runs differ only in float summation order (mean of two half-batch means
  // vs one mean over 2B rows), a few ulp of a gradient of size ~1 times lr 0.1, on weights of
  // size ~0.3: 1e-6 absolute + 1e-5 relative is ~10x above what is observed, far below a wrong
  // average (a missing /2 would move weights by ~1e-2).
  auto a = model->parameters(), b = one->parameters();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "param " << i;
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  }
  EXPECT_LT(worst, 1e-6);
  if (r == 0) printf("[ info     ] 2 ranks x B=%lld vs 1 x 2B after one SGD step: max |dw| = %.3g\n", (long long)B, worst);
  // And the step moved the weights (the test is not comparing two untouched models).
  EXPECT_GT((a[0] - mlp()->parameters()[0]).abs().max().item<double>(), 1e-4);
}

TEST(GradSync, SeveralBucketsInReverseOrderAsViews) {
  CountingComm c;
  const int r = c.rank();
  Batch d = data(8, 3);
  auto x = d.x.narrow(0, r * 4, 4), y = d.y.narrow(0, r * 4, 4);
  auto ref_model = mlp();
  loss(ref_model, x, y).backward();
  auto want = mean_over_ranks(c, grads_of(ref_model));

  auto model = mlp();
  // 600 bytes: the 16x16 weight (1 KB) is alone, the small tensors share buckets.
  GradSync sync(model->named_parameters(), c, 600.0 / (1024 * 1024));
  ASSERT_GE(sync.num_buckets(), 3);
  EXPECT_EQ(sync.bucket_params(0).front(), "4.bias");  // the last registered parameter comes first
  EXPECT_EQ(sync.bucket_params(sync.num_buckets() - 1).back(), "0.weight");
  sync.zero_grad();
  std::vector<void*> before;
  for (auto& p : model->parameters()) before.push_back(p.grad().data_ptr());
  sync.arm();
  loss(model, x, y).backward();
  EXPECT_EQ(c.all_reduces, sync.num_buckets());
  sync.finish();
  auto got = model->parameters();
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(torch::equal(got[i].grad(), want[i])) << "param " << i;
    EXPECT_EQ(got[i].grad().data_ptr(), before[i]) << "param.grad must stay the bucket view";
  }
}

// Two optimizer steps of k micro-steps each, for each way of zeroing the grads: the buckets must
// neither leak the previous step's sums nor miss the grads that autograd allocated afresh.
TEST(GradSync, AccumulationReducesOnlyOnTheArmedMicroStep) {
  enum class Zero { Sync, OptimNone, OptimZero };
  for (auto overlap : {kiln::dist::Overlap::WithBackward, kiln::dist::Overlap::AfterBackward}) {
    for (Zero zero : {Zero::Sync, Zero::OptimNone, Zero::OptimZero}) {
      SCOPED_TRACE("overlap=" + std::to_string(int(overlap)) + " zero=" + std::to_string(int(zero)));
      CountingComm c;
      const int r = c.rank();
      const int k = 3, B = 4;
      auto model = mlp(), ref_model = mlp();
      GradSync sync(model->named_parameters(), c, 600.0 / (1024 * 1024), overlap);
      torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1));
      torch::optim::SGD ref_opt(ref_model->parameters(), torch::optim::SGDOptions(0.1));
      for (int step = 0; step < 2; ++step) {
        Batch d = data(2 * k * B, 11 + step);
        auto micro = [&](int m) {
          return std::make_pair(d.x.narrow(0, (r * k + m) * B, B), d.y.narrow(0, (r * k + m) * B, B));
        };
        // Reference: local sums over the micro-steps, then the mean over ranks by all-gather.
        ref_opt.zero_grad();
        for (int m = 0; m < k; ++m) {
          auto [x, y] = micro(m);
          (loss(ref_model, x, y) / k).backward();
        }
        auto want = mean_over_ranks(c, grads_of(ref_model));
        auto ref_params = ref_model->parameters();
        for (size_t i = 0; i < ref_params.size(); ++i) ref_params[i].mutable_grad().copy_(want[i]);
        ref_opt.step();

        if (zero == Zero::Sync) sync.zero_grad();
        else opt.zero_grad(/*set_to_none=*/zero == Zero::OptimNone);
        const int before = c.all_reduces;
        for (int m = 0; m < k; ++m) {
          if (m == k - 1) sync.arm();
          auto [x, y] = micro(m);
          (loss(model, x, y) / k).backward();
          if (m < k - 1) EXPECT_EQ(c.all_reduces, before) << "communication on micro-step " << m;
        }
        EXPECT_EQ(c.all_reduces - before, overlap == kiln::dist::Overlap::WithBackward ? sync.num_buckets() : 0) << "launched during backward";
        sync.finish();
        EXPECT_EQ(c.all_reduces - before, sync.num_buckets());
        auto got = model->parameters();
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_TRUE(torch::equal(got[i].grad(), want[i])) << "step " << step << " param " << i;
        opt.step();
      }
      auto a = model->parameters(), b = ref_model->parameters();
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "param " << i;
    }
  }
}

TEST(GradSync, UnusedParameterIsNamed) {
  CountingComm c;
  auto model = mlp();
  auto extra = model->named_parameters();
  torch::OrderedDict<std::string, torch::Tensor> params = extra;
  params.insert("unused.weight", torch::zeros({3}, torch::requires_grad()));
  GradSync sync(params, c);
  sync.zero_grad();
  sync.arm();
  Batch d = data(4);
  loss(model, d.x, d.y).backward();
  try {
    sync.finish();
    FAIL() << "finish() must throw";
  } catch (const kiln::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unused.weight"), std::string::npos) << e.what();
  }
}

TEST(GradSync, DifferentShapesNameTheRank) {
  CountingComm c;
  auto model = mlp(c.rank() == 1 ? 17 : 16);
  try {
    GradSync sync(model->named_parameters(), c);
    FAIL() << "construction must throw on every rank";
  } catch (const kiln::Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("rank(s) 1 differ from rank 0"), std::string::npos) << w;
    if (c.rank() == 1) EXPECT_NE(w.find("0.weight"), std::string::npos) << w;
  }
}

TEST(GradSync, DestructorRemovesHooks) {
  CountingComm c;
  const int r = c.rank();
  auto model = mlp();
  { GradSync sync(model->named_parameters(), c); }
  Batch d = data(4, 5);
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  loss(model, d.x.narrow(0, 2 * r, 2), d.y.narrow(0, 2 * r, 2)).backward();  // a dangling hook would crash
  EXPECT_EQ(c.all_reduces, 0);
  auto ref = mlp();
  loss(ref, d.x.narrow(0, 2 * r, 2), d.y.narrow(0, 2 * r, 2)).backward();
  EXPECT_TRUE(torch::equal(model->parameters()[0].grad(), ref->parameters()[0].grad()));  // local, not averaged
}

TEST(GradSync, MisuseIsCaught) {
  CountingComm c;
  auto model = mlp();
  GradSync sync(model->named_parameters(), c);
  EXPECT_THROW(sync.finish(), c10::Error);  // finish without arm
  sync.arm();
  EXPECT_THROW(sync.arm(), c10::Error);  // arm twice
  EXPECT_THROW(GradSync(model->parameters(), c, 0.0), kiln::Error);
}

}  // namespace

namespace {
// Issue 14, ZeRO-1: with owners, each parameter's grad is the mean over ranks on its owner (bit for
// bit what the all-reduce gives), every bucket holds one owner's parameters and goes there by a
// reduce (no all-reduce), and broadcast_from_owners hands every rank the owners' weights.
TEST(GradSync, Zero1ReducesEachBucketToItsOwner) {
  CountingComm c;
  const int r = c.rank();
  const int64_t B = 5;
  Batch d = data(2 * B, 3);
  auto x = d.x.narrow(0, r * B, B), y = d.y.narrow(0, r * B, B);
  auto ref_model = mlp();
  loss(ref_model, x, y).backward();
  auto want = mean_over_ranks(c, grads_of(ref_model));

  auto model = mlp();
  const kiln::dist::Ownership own(model->named_parameters(), r, c.world());
  const auto& owner = own.owners();
  EXPECT_NE(std::count(owner.begin(), owner.end(), 0), 0);
  EXPECT_NE(std::count(owner.begin(), owner.end(), 1), 0);
  GradSync sync(model->named_parameters(), c, 25.0, kiln::dist::Overlap::WithBackward, own);
  EXPECT_EQ(sync.num_buckets(), 2);  // one per owner
  for (int64_t b = 0; b < sync.num_buckets(); ++b) {
    std::set<int> owners_in;
    for (const auto& n : sync.bucket_params(b)) {
      const auto names = model->named_parameters().keys();
      owners_in.insert(owner[std::find(names.begin(), names.end(), n) - names.begin()]);
    }
    EXPECT_EQ(owners_in.size(), 1u) << "bucket " << b << " mixes owners";
  }
  sync.zero_grad();
  sync.arm();
  loss(model, x, y).backward();
  sync.finish();
  EXPECT_EQ(c.all_reduces, 0);
  EXPECT_EQ(c.reduces, 2);
  auto got = model->parameters();
  int checked = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (owner[i] == r) {
      EXPECT_TRUE(torch::equal(got[i].grad(), want[i])) << "param " << i;
      ++checked;
    }
  EXPECT_GT(checked, 0);

  // The owners' updated weights reach every rank.
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < got.size(); ++i)
      if (owner[i] == r) got[i].fill_(100.0 + double(i));
  }
  kiln::dist::broadcast_from_owners(got, own, c);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(torch::equal(got[i], torch::full_like(got[i], 100.0 + double(i)))) << "param " << i;
}
}  // namespace
