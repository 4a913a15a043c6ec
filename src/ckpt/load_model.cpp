// load_model; see load_model.h. The tokenizer comes from the checkpoint's own tokenizer.json so a
// checkpoint directory is all a user needs to copy to another machine.
#include "ckpt/load_model.h"

#include <filesystem>

#include "core/error.h"
#include "core/json_file.h"
#include "ckpt/checkpoint.h"
#include "ckpt/copy_into.h"

namespace kiln::ckpt {

LoadedModel load_model(const std::string& ckpt_path, const torch::Device& device) {
  LoadedModel m;
  m.dir = find_latest_checkpoint(ckpt_path);
  CheckpointRead ck = load_checkpoint(m.dir, 0, 1, ReadScope::Weights);
  m.step = ck.step;
  m.cfg = load_config_text(json_get<std::string>(ck.meta, "config", m.dir + "/meta.json"), m.dir + "/meta.json");
  adopt_saved_numerics(ck.meta, m.dir + "/meta.json");
  const std::string tok_path = m.dir + "/tokenizer.json";
  if (!std::filesystem::exists(tok_path)) throw Error("checkpoint " + m.dir + " has no tokenizer.json");
  m.tokenizer = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::load(tok_path));
  // Uninitialised: every weight is copied from the checkpoint below (a missing one is an error).
  m.model = model::make_model(m.cfg.model, m.tokenizer->vocab_size(), 0, torch::kCPU, model::Weights::Uninitialised);
  copy_into(model::named_parameters_of(*m.model), ck.model, Strictness::IgnoreExtra, "checkpoint " + m.dir);
  m.model->to(device);
  m.model->eval();
  return m;
}

}  // namespace kiln::ckpt
