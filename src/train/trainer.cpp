// The training loop; see trainer.h. It reads top to bottom like llm.c's and nanochat's:
// "once in a while" blocks (eval, samples, checkpoint) first, then `if (last_step) break`, then
// the micro-steps, gradient sync, clipping, schedule, optimizer steps and one log line.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"        // Error
#include "core/json_file.h"    // json_get
#include "ckpt/copy_into.h"     // copy_into
#include "core/log.h"          // log::info
#include "data/cursor_remap.h" // remap_batches
#include "dist/dist.h"         // ctx, all_reduce_sum, barrier
#include "dist/grad_sync.h"    // GradSync
#include "dist/signals.h"      // stop_requested
#include "dist/zero1.h"        // Ownership, broadcast_from_owners
#include "engine/generator.h"  // Generator
#include "engine/sampler.h"    // draw_seed
#include "model/autocast.h"    // AutocastGuard
#include "model/bpb.h"         // BpbAccumulator, BpbSums
#include "model/fp8.h"         // fp8::Guard, fp8::check_supported
#include "optim/optimizers.h"  // make_optimizers, Optimizers, lr_multiplier
#include "train/core_metric.h" // training_core
#include "train/grad_check.h"  // grad_norm_and_clip, nonfinite_message
#include "train/metrics.h"     // MetricsLog, peak_flops, f9
#include "train/test_hooks.h"  // hooks::maybe_poison_grads
#include "train/valid_loss.h"  // count_step_targets, micro_loss

namespace kiln::train {
namespace {

using Clock = std::chrono::steady_clock;

void sync_device(const torch::Device& d) {
#ifdef KILN_WITH_CUDA
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
#endif
  (void)d;
}

}  // namespace

struct Trainer::State {
  TrainerParts p;
  std::unique_ptr<optim::Optimizers> opt;
  std::unique_ptr<dist::GradSync> sync;  // DDP: bucketed all-reduce overlapped with backward
  std::vector<torch::Tensor> params;
  // Who steps which parameter (dist.zero1; Note [One Ownership]): built once, asked by GradSync,
  // the optimizers, the gradient norm, the weight broadcast, save and resume.
  dist::Ownership own;
  bool memory_logged = false;
  torch::Generator sample_gen;
  int64_t step = 0;           // optimizer steps done
  int64_t restored_step = -1;
  int64_t total = 0;
  int64_t accum = 1;
  bool autocast = false;
  double flops_per_token = 0;
  MetricsLog metrics;
};

Trainer::Trainer(TrainerParts parts) : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.p = std::move(parts);
  const Config& c = s.p.cfg;
  const auto& dc = dist::ctx();
  s.accum = grad_accum_steps(c, dc.world);
  s.autocast = model::use_autocast(c.train.dtype, s.p.device);
  if (c.train.fp8) model::fp8::check_supported(s.p.device);  // refuses CPU and pre-sm_89 GPUs
  s.flops_per_token = s.p.model->estimate_flops();
  s.params = s.p.model->parameters();
  if (s.p.comm) {
    // Every rank starts from rank 0's weights (init is seeded, but this makes it a guarantee).
    torch::NoGradGuard no_grad;
    for (auto& p : s.params) s.p.comm->broadcast(p, 0);
    if (c.dist.zero1) s.own = dist::Ownership(s.p.model->named_parameters(), dc.rank, dc.world);
    s.sync = std::make_unique<dist::GradSync>(s.p.model->named_parameters(), *s.p.comm, c.dist.bucket_mb,
                                              dist::Overlap::WithBackward, s.own);
    log::info("[dist] %s, %lld gradient buckets of <= %.0f MB, %s overlapped with backward", s.p.comm->name().c_str(),
              (long long)s.sync->num_buckets(), c.dist.bucket_mb,
              c.dist.zero1 ? "ZeRO-1: each reduced to its owner rank," : "all-reduce");
  }

  // The optimizers of optim.recipe (nanochat: Muon for block matrices, AdamW for embedding and head;
  // adamw: GPT-2's) from the model's parameter groups.
  s.opt = std::make_unique<optim::Optimizers>(optim::make_optimizers(s.p.model->param_groups(), c.optim, s.p.model->width()));
  if (s.own.sharded()) s.opt->set_owner_filter([&own = s.own](const std::string& n) { return own.owns(n); });

  s.sample_gen = at::make_generator<at::CPUGeneratorImpl>(c.run.seed + 1000003ULL * dc.rank);

  s.total = s.p.total_steps;
  if (s.total < 0) throw Error("[train] the run's length is not set (TrainerParts::total_steps; see train/run_length.h)");
}

Trainer::~Trainer() = default;

model::TensorFilter Trainer::optimizer_state_filter() const {
  const optim::Optimizers* opt = s_->opt.get();
  return [opt](const std::string& key) { return key.starts_with("stage.") || opt->keeps_state(key); };
}

void Trainer::load_weights(const ckpt::CheckpointRead& ck) {
  ckpt::copy_into(model::named_parameters_of(*s_->p.model), ck.model, ckpt::Strictness::Exact, "checkpoint " + ck.dir);
}

void Trainer::init_from(const ckpt::CheckpointRead& ck, bool optimizer) {
  load_weights(ck);
  if (!optimizer) return;
  // Moments and step counters from the parent; learning rates (and multipliers) stay this run's.
  std::map<std::string, torch::Tensor> merged;
  for (const auto& [k, v] : ck.optim)
    if (!k.starts_with("stage.")) merged.emplace(k, v);  // a parent stage's own state stays behind
  for (const auto& [k, v] : s_->opt->state())
    if (k.ends_with(".lr") || k.ends_with("lr_multiplier") || !merged.count(k)) merged[k] = v;
  s_->opt->load_state(merged);
}

void Trainer::restore(const ckpt::CheckpointRead& ck) {
  State& s = *s_;
  load_weights(ck);
  std::map<std::string, torch::Tensor> optim, stage;
  for (const auto& [k, v] : ck.optim) (k.starts_with("stage.") ? stage : optim).emplace(k, v);
  s.opt->load_state(optim);
  if (s.p.hooks.restore_state) s.p.hooks.restore_state(stage);
  auto rng = ck.rng.find("rng.sample");
  if (rng != ck.rng.end()) s.sample_gen.set_state(rng->second);
  const std::string state_file = ck.dir + " (rank state)";
  data::Cursor cur = data::Cursor::from_json(json_get<nlohmann::json>(ck.rank_state, "cursor", state_file), state_file);
  const int64_t saved_batches = cur.batches;
  // Another world size: the same global window, split over this job's ranks (cursor_remap.h).
  cur.batches = data::remap_batches(saved_batches, ck.saved_world, dist::ctx().world);
  s.p.train_loader->restore(cur);
  if (ck.saved_world != dist::ctx().world)
    log::info("[ckpt] resharded: saved by %d rank(s), resumed on %d; loader cursor %lld -> %lld batches per rank",
              ck.saved_world, dist::ctx().world, (long long)saved_batches, (long long)cur.batches);
  s.step = s.restored_step = ck.step;
}

double Trainer::evaluate() {
  State& s = *s_;
  const Config& c = s.p.cfg;
  const auto& dc = dist::ctx();
  torch::NoGradGuard no_grad;
  s.p.val_loader->restore({});  // the same validation tokens every time
  const int64_t per_batch = c.train.device_batch_size * c.model.seq_len * dc.world;
  const int64_t batches = std::max<int64_t>(1, c.eval.tokens / per_batch);
  model::BpbAccumulator acc(s.p.tokenizer->token_bytes(), s.p.device);
  for (int64_t i = 0; i < batches; ++i) {
    data::Batch b = s.p.val_loader->next();
    model::AutocastGuard ag(s.p.device, s.autocast);
    acc.add(*s.p.model, b.inputs, b.targets);
  }
  model::BpbSums t = acc.sums();
  for (double* v : {&t.nats, &t.bytes, &t.all_nats, &t.tokens}) *v = dist::all_reduce_sum(*v);
  const double bpb = t.bpb(), val_loss = t.loss();
  log::info("[eval] step %lld | val loss %.4f nats/token | val bpb %.4f", (long long)s.step, val_loss, bpb);
  nlohmann::ordered_json rec = {{"step", s.step}, {"val_loss", std::stod(f9(val_loss))}, {"val_bpb", std::stod(f9(bpb))}};
  s.metrics.write(rec);
  return bpb;
}

void Trainer::core() {
  State& s = *s_;
  s.metrics.write(training_core(*s.p.core_bundle, s.p.cfg, s.p.model, s.p.tokenizer, s.p.device, s.autocast, s.step));
}

void Trainer::sample() {
  State& s = *s_;
  if (dist::ctx().rank != 0) return;
  engine::SamplingOptions o;
  o.max_new_tokens = s.p.cfg.eval.sample_tokens;
  if (!s.p.sample_prompts.empty()) {  // chat stages: greedy replies to fixed prompts, one batch
    o.temperature = 0;
    o.stop_tokens = {s.p.sample_stop};
    std::vector<engine::SamplingOptions> opts(s.p.sample_prompts.size(), o);
    auto outs = engine::Generator(s.p.model, s.p.tokenizer).generate(s.p.sample_prompts, opts);
    for (size_t i = 0; i < outs.size(); ++i) {
      std::vector<uint32_t> ids(s.p.sample_prompts[i].begin(), s.p.sample_prompts[i].end());
      ids.insert(ids.end(), outs[i].ids.begin(), outs[i].ids.end());
      log::info("[sample] step %lld: %s", (long long)s.step, s.p.tokenizer->decode(ids).c_str());
      s.metrics.text(s.step, "samples/" + std::to_string(i), "```\n" + s.p.tokenizer->decode(ids) + "\n```");
    }
    return;
  }
  o.temperature = 0.8;
  o.top_k = 50;
  std::vector<int64_t> prompt = {static_cast<int64_t>(s.p.tokenizer->bos_id())};
  o.seed = engine::draw_seed(s.sample_gen);
  auto out = engine::Generator(s.p.model, s.p.tokenizer).generate({prompt}, {o})[0];
  std::vector<uint32_t> ids(out.ids.begin(), out.ids.end());
  log::info("[sample] step %lld:\n%s\n", (long long)s.step, s.p.tokenizer->decode(ids).c_str());
  s.metrics.text(s.step, "samples/0", "```\n" + s.p.tokenizer->decode(ids) + "\n```");
}

void Trainer::save(int64_t step, bool stopped_early, const nlohmann::ordered_json& last_metrics) {
  State& s = *s_;
  const Config& c = s.p.cfg;
  const auto t0 = Clock::now();
  ckpt::CheckpointWrite w;
  w.step = step;
  for (const auto& kv : s.p.model->named_parameters()) w.model.emplace_back(kv.key(), kv.value().detach());
  // Each optimizer tensor once (Note [Optimizer state by name]): rank 0 the shared scalars, and
  // every parameter's tensors without ZeRO-1; under ZeRO-1 each rank its own parameters'.
  const bool rank0 = dist::ctx().rank == 0;
  w.optim = s.opt->state(rank0 ? optim::StateScope::All : s.own.sharded() ? optim::StateScope::Owned : optim::StateScope::None);
  w.rng.emplace_back("rng.sample", s.sample_gen.get_state());
  if (s.p.hooks.save_state)
    for (auto& t : s.p.hooks.save_state()) w.optim.push_back(std::move(t));
  w.rank_state = {{"step", step}, {"rank", dist::ctx().rank}, {"cursor", s.p.train_loader->cursor().to_json()}};
  w.meta = {{"config", to_yaml(c)},
            {"stage", s.p.stage},
            {"lineage", s.p.lineage},
            {"tokenizer_sha256", s.p.tokenizer->sha256()},
            {"total_steps", s.total},
            {"stopped_early", stopped_early},
            {"device", s.p.device.is_cuda() ? "cuda" : "cpu"},  // resume refuses a change (startup_checks)
            {"metrics", nlohmann::json::parse(last_metrics.dump())},
            {"created_by", std::string("kiln (LibTorch ") + KILN_TORCH_VERSION + ")"}};
  w.tokenizer_path = s.p.tokenizer_path;
  const std::string dir = ckpt::save_checkpoint(c.checkpoint.dir, w, c.checkpoint.keep_last);
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  log::info("[ckpt] saved %s in %.2f s", dir.c_str(), dt);
}

void Trainer::log_optimizer_memory() {
  State& s = *s_;
  s.memory_logged = true;
  const auto bytes = dist::all_gather(s.opt->state_bytes());
  int64_t total = 0;
  for (int64_t b : bytes) total += b;
  log::info("[optim] optimizer state per rank (%s): %s; %.3f MB in all", s.own.sharded() ? "ZeRO-1" : "replicated",
            per_rank_mb(bytes).c_str(), double(total) / 1e6);
}

int Trainer::run() {
  State& s = *s_;
  const Config& c = s.p.cfg;
  const auto& dc = dist::ctx();
  namespace fs = std::filesystem;
  fs::create_directories(c.run.dir);
  s.metrics = MetricsLog(c.run.dir + "/metrics.jsonl", s.restored_step, c.log.tensorboard ? c.run.dir + "/tb" : "");
  if (s.restored_step < 0) s.metrics.text(0, "config", "```\n" + to_yaml(c) + "```");
  const fs::path stopped_marker = fs::path(c.run.dir) / "STOPPED_EARLY";
  if (dc.rank == 0) fs::remove(stopped_marker);

  const int64_t tokens_per_step = c.train.total_batch_size;
  const double peak = peak_flops(s.p.device) * dc.world;
  log::info("[train] %lld parameters, %.4g FLOPs/token, %lld steps of %lld tokens (%lld micro-steps), from step %lld",
            (long long)s.p.model->num_params(), s.flops_per_token, (long long)s.total, (long long)tokens_per_step,
            (long long)s.accum, (long long)s.step);

  nlohmann::ordered_json last_metrics = nlohmann::ordered_json::object();
  double train_seconds = 0;
  int64_t timed_steps = 0;
  for (int64_t step = s.step;; ++step) {
    s.step = step;
    const bool last_step = step == s.total;
    const bool stop = dist::stop_requested();  // SIGTERM/SIGUSR1 on any rank, agreed by all

    // ---- once in a while: validation, samples, checkpoint ----
    // (At the step a run resumes from, these already ran before that checkpoint was saved.)
    const bool fresh = step != s.restored_step;
    const bool eval_now = c.eval.every > 0 && (step % c.eval.every == 0 || last_step);
    if (fresh && s.p.val_loader && eval_now) evaluate();
    if (fresh && s.p.hooks.evaluate && eval_now) s.metrics.write(s.p.hooks.evaluate(step));
    if (fresh && s.p.core_bundle && step > 0 && (step % c.eval.core_every == 0 || last_step)) core();
    if (fresh && c.eval.sample_every > 0 && step > 0 && (step % c.eval.sample_every == 0 || last_step)) sample();
    const bool periodic = c.checkpoint.every > 0 && step % c.checkpoint.every == 0 && step > 0;
    if (fresh && (last_step || stop || periodic)) save(step, stop && !last_step, last_metrics);
    if (stop && !last_step) {
      if (dc.rank == 0) std::ofstream(stopped_marker) << step << "\n";
      log::info("[train] stopped by signal at step %lld after a checkpoint; resume with --resume %s",
                (long long)step, c.checkpoint.dir.c_str());
      return 0;
    }
    if (last_step) break;

    // ---- one optimizer step: micro-steps, clipping, schedule, update ----
    const auto t0 = Clock::now();
    // The loss is over valid targets of the whole step (all micro-steps, all ranks), so the
    // micro-batches are fetched first and their valid targets counted (train/valid_loss.h).
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().device(s.p.device));
    std::vector<data::Batch> batches;
    for (int64_t m = 0; m < s.accum; ++m) batches.push_back(s.p.train_loader->next());
    const StepTargets tgt = count_step_targets(batches, dc.world);
    for (int64_t m = 0; m < s.accum; ++m) {
      torch::Tensor loss;
      {
        model::AutocastGuard ag(s.p.device, s.autocast);
        model::fp8::Guard fp8(c.train.fp8);  // training forwards only: evaluation stays bf16
        loss = micro_loss(*s.p.model, batches[m], tgt.counts[m]);
      }
      loss_sum += loss.detach() * tgt.share(m);
      // Only the last micro-step's backward communicates; earlier ones sum gradients locally.
      if (s.sync && m == s.accum - 1) s.sync->arm();
      (loss * tgt.weight(m)).backward();
    }
    if (s.sync) s.sync->finish();  // every grad is now the mean over ranks
    hooks::maybe_poison_grads(step + 1, s.params);
    const double loss_local = loss_sum.item<double>();
    const double loss = tgt.step_loss(dist::all_reduce_sum(loss_local));
    // NaN/Inf loss or gradients never reach the weights (grads are identical on every rank here).
    const double grad_norm = grad_norm_and_clip(s.params, c.train.grad_clip, s.own, s.p.comm.get());
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    if (!finite && !c.train.skip_nonfinite)
      throw Error(nonfinite_message(step + 1, loss, grad_norm) + "; stopped without saving, the last good checkpoint in " +
                      c.checkpoint.dir + " is kept",
                  "lower the learning rates (optim.*) and resume from the last checkpoint with --resume, or "
                  "resume with train.skip_nonfinite=true to skip such steps");
    if (!finite) log::warn("[train] %s: step skipped, weights unchanged (train.skip_nonfinite)",
                           nonfinite_message(step + 1, loss, grad_norm).c_str());
    s.opt->set_schedule(step, s.total, c.optim);
    const double lrm = optim::stage_lr_multiplier(step, s.total, c.optim);
    if (finite) s.opt->step();
    if (finite && s.own.sharded()) dist::broadcast_from_owners(s.params, s.own, *s.p.comm);  // owners' new weights
    if (!s.memory_logged) log_optimizer_memory();
    if (s.sync) {
      s.sync->zero_grad();  // param.grad stay views into the buckets
    } else {
      s.opt->zero_grad();
    }
    sync_device(s.p.device);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();

    // ---- one log line and one metrics record ----
    // The first step after a (re)start pays for warm-up: leave it out of the ETA.
    if (step > std::max<int64_t>(0, s.restored_step)) train_seconds += dt, ++timed_steps;
    const double tok_s = tokens_per_step / dt;
    const double mfu = peak > 0 ? 100.0 * s.flops_per_token * tok_s / peak : -1;
    const double avg_dt = timed_steps > 0 ? train_seconds / timed_steps : dt;
    last_metrics = {{"step", step + 1},
                    {"loss", std::stod(f9(loss))},
                    {"lr_mult", std::stod(f9(lrm))},
                    {"grad_norm", std::stod(f9(grad_norm))},
                    {"tokens", (step + 1) * tokens_per_step},
                    {"dt_ms", std::stod(f9(dt * 1000))},
                    {"tok_per_s", std::stod(f9(tok_s))}};
    if (mfu >= 0) last_metrics["mfu"] = std::stod(f9(mfu));
    // Best-fit packing (data.layout bestfit): document tokens the step's rows (all ranks) dropped,
    // and their share of the document tokens read (nanochat: ~35% at T=2048).
    int64_t cropped = -1;
    for (const auto& b : batches)
      if (b.cropped >= 0) cropped = std::max<int64_t>(cropped, 0) + b.cropped;
    const double crop_frac = double(cropped) / double(cropped + tokens_per_step / c.model.seq_len * (c.model.seq_len + 1));
    if (cropped >= 0) last_metrics["cropped_tokens"] = cropped, last_metrics["crop_frac"] = std::stod(f9(crop_frac));
    for (const auto& [group, lr] : s.opt->group_lrs()) last_metrics["lr/" + group] = std::stod(f9(lr));
    if (!finite) last_metrics["skipped"] = true;
    if (s.p.hooks.step_record) {
      const nlohmann::ordered_json extra = s.p.hooks.step_record();
      for (const auto& [k, v] : extra.items()) last_metrics[k] = v;
    }
    s.metrics.write(last_metrics);
    if ((step + 1) % c.log.every == 0 || step + 1 == s.total) {
      char mfu_s[32] = "n/a";
      if (mfu >= 0) snprintf(mfu_s, sizeof(mfu_s), "%.1f%%", mfu);
      char crop_s[48] = "";
      if (cropped >= 0) snprintf(crop_s, sizeof(crop_s), " | cropped %.1f%%", 100.0 * crop_frac);
      log::info("step %6lld/%lld (%5.1f%%) | loss %.6f | lrm %.3f | norm %.3f | dt %.0f ms | tok/s %.0f | mfu %s | eta %s%s",
                (long long)(step + 1), (long long)s.total, 100.0 * (step + 1) / s.total, loss, lrm, grad_norm,
                dt * 1000, tok_s, mfu_s, format_duration(avg_dt * (s.total - step - 1)).c_str(), crop_s);
    }
  }
  log::info("[train] done: %lld steps; checkpoints in %s, metrics in %s/metrics.jsonl", (long long)s.total,
            c.checkpoint.dir.c_str(), c.run.dir.c_str());
  return 0;
}

}  // namespace kiln::train
