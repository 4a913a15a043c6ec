// CORE during training (eval.core_every, issue 21): the same evaluator as ./eval --task core
// (eval/core_eval.h), run on the model being trained by every rank together, so that a run logs
// the figure nanochat ranks runs by. Its record for metrics.jsonl is {"step", "core",
// "core/<task label>": centred accuracy, ...}; the report card plots "core" over steps.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>

#include "core/config.h"
#include "model/lm.h"
#include "tokenizer/tokenizer.h"

namespace kiln::eval { struct CoreBundle; }

namespace kiln::train {

// The bundle of eval.core_bundle, read and checked at start-up (a bad bundle fails before step 0,
// not hours later); null when eval.core_every is 0.
std::shared_ptr<const eval::CoreBundle> load_training_core_bundle(const Config& cfg);

// CORE of `model` as ./eval --task core --max-per-task eval.core_max_per_task computes it on a
// checkpoint of these weights (same batches, so the same figures); all ranks must call it.
// The model is evaluated in eval mode and left in the mode it was in.
nlohmann::ordered_json training_core(const eval::CoreBundle& bundle, const Config& cfg, const model::Model& model,
                                     std::shared_ptr<const tok::Tokenizer> tokenizer, const torch::Device& device,
                                     bool autocast, int64_t step);

}  // namespace kiln::train
