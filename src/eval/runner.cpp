// The runner for categorical tasks and bits per byte, and what all runners share; see runner.h.
#include "eval/runner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "core/json_file.h"
#include "data/chat_loader.h"
#include "data/pretrain_loader.h"
#include "data/shard.h"
#include "dist/comm.h"
#include "dist/dist.h"
#include "eval/categorical.h"
#include "model/autocast.h"
#include "model/bpb.h"
#include "core/format.h"
#include "core/sha256.h"
#include "tokenizer/chat.h"

namespace kiln::eval {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

EvalModel load_eval_model(const std::string& ckpt, const std::string& device) {
  EvalModel em;
  em.device = dist::pick_device(device, "[eval] --device");
  em.m = ckpt::load_model(ckpt, em.device);
  const std::string meta_path = em.m.dir + "/meta.json", bytes = read_text_file(meta_path);
  em.meta_sha256 = sha256_hex(bytes);
  const nlohmann::json meta = nlohmann::json::parse(bytes, nullptr, false);
  if (meta.is_object() && meta.contains("stage") && meta["stage"].is_string()) em.stage = meta["stage"].get<std::string>();
  em.autocast = model::use_autocast(em.m.cfg.train.dtype, em.device);
  return em;
}

std::vector<std::pair<int64_t, int64_t>> rank_batches(int64_t n, int64_t batch) {
  const auto& dc = dist::ctx();
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t b = dc.rank; b * batch < n; b += dc.world) out.emplace_back(b * batch, std::min(n, (b + 1) * batch));
  return out;
}

TaskResult summed_result(const std::string& task, int64_t correct, int64_t done) {
  TaskResult r;
  r.task = task;
  r.correct = dist::all_reduce_sum(correct);
  r.total = dist::all_reduce_sum(done);
  r.score = r.total ? double(r.correct) / r.total : 0.0;
  return r;
}

Progress::Progress(std::string task, int64_t total) : task_(std::move(task)), total_(total), t0_(now_s()) {}

void Progress::update(int64_t done_local, int64_t correct_local) {
  if (dist::ctx().rank != 0) return;
  const double t = now_s(), dt = t - t0_;
  const int64_t done = std::min(total_, done_local * dist::ctx().world);  // rank 0 stands for all
  const bool tty = isatty(2);
  if (done < total_ && t - last_ < (tty ? 0.2 : 5.0)) return;
  last_ = t;
  const double rate = dt > 0 ? done / dt : 0;
  fprintf(stderr, "%s[eval] %s %lld/%lld (%.1f%%) | acc %.4f | %.1f ex/s | eta %s%s", tty ? "\r" : "", task_.c_str(),
          (long long)done, (long long)total_, total_ ? 100.0 * done / total_ : 100.0,
          done_local ? double(correct_local) / done_local : 0.0, rate,
          format_duration(rate > 0 ? (total_ - done) / rate : 0).c_str(), tty && done < total_ ? "" : "\n");
  fflush(stderr);
}

TaskResult run_task(const TaskSpec& t, EvalModel& em, const EvalOptions& o) {
  const double t0 = now_s();
  std::vector<data::TaskExample> exs = data::read_task(t.kind, task_data_path(t, o.data_dir));
  if (o.max_examples >= 0 && static_cast<int64_t>(exs.size()) > o.max_examples) exs.resize(o.max_examples);
  if (!t.categorical) {
    TaskResult r = run_generative(t, exs, em, o);
    r.seconds = now_s() - t0;
    return r;
  }
  const int64_t n = static_cast<int64_t>(exs.size()), B = o.batch_size > 0 ? o.batch_size : 8;
  // Prompts longer than the model's rotary table (10x its training context) keep their end.
  const int64_t max_len = 10 * em.m.cfg.model.seq_len;
  int64_t correct = 0, done = 0, cropped = 0;
  double chance = 0, chance_var = 0;  // sum of 1/choices and its variance: for sanity checks
  Progress prog(t.name, n);
  torch::NoGradGuard no_grad;
  std::ofstream dump;
  if (!o.dump_examples.empty() && o.oracle == Oracle::None) {
    const std::string path = o.dump_examples + (dist::ctx().rank > 0 ? "." + std::to_string(dist::ctx().rank) : "");
    dump.open(path, std::ios::app);  // appended: every task of the run in turn
    if (!dump) throw Error("[eval] --dump-examples: cannot write " + path);
  }
  for (auto [b, e] : rank_batches(n, B)) {
    std::vector<const data::TaskExample*> batch;
    for (int64_t i = b; i < e; ++i) batch.push_back(&exs[i]);
    std::vector<std::string> pred;
    if (o.oracle != Oracle::None) {
      for (const auto* ex : batch) pred.push_back(oracle_answer(t, *ex, o.oracle));
    } else {
      McBatch mb = make_mc_batch(*em.m.tokenizer, batch, max_len);
      cropped += mb.cropped;
      torch::Tensor logits;
      {
        model::AutocastGuard ag(em.device, em.autocast);
        logits = em.m.model->forward(mb.ids.to(em.device));
      }
      const auto scores = letter_logits(logits, mb);
      for (int64_t k : argmax_letters(scores)) pred.push_back(batch[pred.size()]->letters[k]);
      for (size_t i = 0; dump.is_open() && i < batch.size(); ++i) {
        // The prompt as rendered (not as McBatch recorded it), cropped as make_mc_batch crops.
        auto ids = tok::render_for_completion(*em.m.tokenizer, batch[i]->conv);
        std::vector<int64_t> prompt(ids.begin() + std::max<int64_t>(0, static_cast<int64_t>(ids.size()) - max_len), ids.end());
        nlohmann::json line = {{"task", t.name}, {"id", batch[i]->id}, {"index", b + static_cast<int64_t>(i)},
                               {"prompt_ids", prompt},
                               {"letters", batch[i]->letters}, {"letter_ids", mb.letters[i]},
                               {"letter_logits", scores[i]}, {"pred", pred[i]},
                               {"answer", batch[i]->answer}};
        dump << line.dump() << "\n";
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      correct += score_mc(pred[i], *batch[i]);
      const double p = 1.0 / batch[i]->letters.size();
      chance += p, chance_var += p * (1 - p);
    }
    done += e - b;
    prog.update(done, correct);
  }
  TaskResult r = summed_result(t.name, correct, done);
  r.extra["chance_correct"] = dist::all_reduce_sum(chance);
  r.extra["chance_sigma"] = std::sqrt(dist::all_reduce_sum(chance_var));
  r.extra["cropped_prompts"] = dist::all_reduce_sum(cropped);
  r.seconds = now_s() - t0;
  return r;
}

TaskResult run_bpb(EvalModel& em, const EvalOptions& o) {
  const double t0 = now_s();
  const Config& c = em.m.cfg;
  std::vector<std::string> paths;
  try {  // every validation source once (a mixture's repeat counts do not weigh bits per byte)
    for (const auto& src : c.data.val)
      for (auto& p : data::list_shards(src.path)) paths.push_back(std::move(p));
    if (paths.empty()) throw Error("no data.val");
  } catch (const Error&) {
    throw Error("[eval] bpb: the checkpoint's data.val = \"" + describe_sources(c.data.val) + "\" matches no token shards from " +
                    "this directory",
                "run ./eval from the directory training ran in, or prepare the validation shards again");
  }
  model::BpbAccumulator acc(em.m.tokenizer->token_bytes(), em.device);
  int64_t done = 0;
  torch::NoGradGuard no_grad;
  if (em.stage != "pretrain" || c.data.layout == "bestfit") {
    // The Trainer's evaluate(): its validation loader from the start, eval.tokens / (B T world)
    // batches per rank; -1 targets (user turns, tool output, padding) are not scored. Chat
    // stages: the stage's conversations; pretraining with data.layout bestfit: best-fit rows.
    const auto& dc = dist::ctx();
    std::unique_ptr<data::Loader> val;
    if (em.stage != "pretrain") {
      std::vector<data::ChatSource> sources;
      for (const auto& src : c.data.val) sources.push_back({data::list_shards(src.path), src.repeat});
      val = std::make_unique<data::ChatLoader>(
          sources, data::chat_loader_options(c, em.stage == "sft", *em.m.tokenizer, dc.rank, dc.world, em.device));
    } else {
      val = std::make_unique<data::PretrainLoader>(
          data::shard_stream(paths, em.m.tokenizer->sha256(), em.m.tokenizer->vocab_size()),
          c.train.device_batch_size, c.model.seq_len, dc.rank, dc.world, em.device, data::Packing::BestFit);
    }
    const int64_t per_batch = c.train.device_batch_size * c.model.seq_len * dc.world;
    const int64_t n = o.max_examples > 0 ? o.max_examples : std::max<int64_t>(1, c.eval.tokens / per_batch);
    Progress prog("bpb", n * dc.world);
    for (int64_t i = 0; i < n; ++i) {
      data::Batch b = val->next();
      model::AutocastGuard ag(em.device, em.autocast);
      acc.add(*em.m.model, b.inputs, b.targets);
      prog.update(++done, 0);
    }
  } else {
    auto stream = data::shard_stream(paths, em.m.tokenizer->sha256(), em.m.tokenizer->vocab_size());
    const int64_t T = c.model.seq_len, avail = (stream->size() - 1) / T;
    const int64_t want = o.max_examples > 0 ? o.max_examples : std::max<int64_t>(1, c.eval.tokens / T);
    const int64_t n = std::min(avail, want), B = o.batch_size > 0 ? o.batch_size : c.train.device_batch_size;
    if (n <= 0) throw Error("[eval] bpb: the validation shards hold fewer than seq_len + 1 = " + std::to_string(T + 1) + " tokens");
    Progress prog("bpb", n);
    for (auto [b, e] : rank_batches(n, B)) {
      // Window w is tokens [w*T, w*T + T]: the rows the Trainer's validation reads, in order.
      std::vector<int64_t> buf((e - b) * (T + 1));
      for (int64_t w = b; w < e; ++w) stream->read(w * T, T + 1, buf.data() + (w - b) * (T + 1));
      auto rows = torch::from_blob(buf.data(), {e - b, T + 1}, torch::kInt64).to(em.device);
      model::AutocastGuard ag(em.device, em.autocast);
      acc.add(*em.m.model, rows.narrow(1, 0, T), rows.narrow(1, 1, T));
      done += e - b;
      prog.update(done, 0);
    }
  }
  model::BpbSums s = acc.sums();
  for (double* v : {&s.nats, &s.bytes, &s.all_nats, &s.tokens}) *v = dist::all_reduce_sum(*v);
  TaskResult r;
  r.task = "bpb";
  r.total = dist::all_reduce_sum(done);
  r.score = s.bpb();
  r.extra["val_loss"] = s.loss();
  r.extra["tokens"] = static_cast<int64_t>(s.tokens);
  r.extra["bytes"] = static_cast<int64_t>(s.bytes);
  r.extra["shards"] = describe_sources(c.data.val);
  r.extra["stage"] = em.stage;
  r.extra["definition"] = bpb_definition(em.stage);
  r.seconds = now_s() - t0;
  return r;
}

std::string bpb_definition(const std::string& stage) {
  return stage == "pretrain" ? "every token of the validation windows (as the Trainer)"
                             : "the trained targets of the validation conversations, the stage's layout (as the Trainer)";
}

}  // namespace kiln::eval
