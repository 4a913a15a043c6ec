// CORE during training; see core_metric.h. A thin adapter: the Trainer's model and tokenizer as
// an eval::EvalModel, ./eval's default options, and the result as one metrics record.
#include "train/core_metric.h"

#include "core/format.h"     // f9
#include "core/log.h"        // log::info
#include "eval/core_bundle.h"  // load_core_bundle
#include "eval/core_eval.h"    // run_core
#include "eval/runner.h"       // EvalModel, EvalOptions

namespace kiln::train {

std::shared_ptr<const eval::CoreBundle> load_training_core_bundle(const Config& cfg) {
  if (cfg.eval.core_every <= 0) return nullptr;
  auto b = std::make_shared<const eval::CoreBundle>(eval::load_core_bundle(cfg.eval.core_bundle));
  log::info("[core] CORE every %lld steps on %zu tasks of %s (at most %lld items each)", (long long)cfg.eval.core_every,
            b->tasks.size(), cfg.eval.core_bundle.c_str(), (long long)cfg.eval.core_max_per_task);
  return b;
}

nlohmann::ordered_json training_core(const eval::CoreBundle& bundle, const Config& cfg, const model::Model& model,
                                     std::shared_ptr<const tok::Tokenizer> tokenizer, const torch::Device& device,
                                     bool autocast, int64_t step) {
  eval::EvalModel em;
  em.m.cfg = cfg;
  em.m.step = step;
  em.m.model = model;
  em.m.tokenizer = std::move(tokenizer);
  em.device = device;
  em.autocast = autocast;
  eval::CoreOptions co;
  co.max_per_task = cfg.eval.core_max_per_task;
  const bool was_training = model->is_training();
  model->eval();  // no dropout (model.dropout), as ./eval sees the checkpoint
  const eval::TaskResult r = eval::run_core(bundle, em, eval::EvalOptions{}, co);
  model->train(was_training);
  log::info("[core] step %lld | CORE %.4f (%lld examples, %.1f s)", (long long)step, r.score, (long long)r.total,
            r.seconds);
  nlohmann::ordered_json rec = {{"step", step}, {"core", std::stod(f9(r.score))}};
  for (const auto& [label, c] : r.extra.at("centered_results").items()) rec["core/" + label] = std::stod(f9(c.get<double>()));
  return rec;
}

}  // namespace kiln::train
