// See hf_io.h. Import builds the run config as YAML text and loads it like any config, so an
// imported checkpoint carries a config that validates; the weights go through GPT2Impl's own
// parameters (names and shapes checked twice: by the table and by the module).
#include "ckpt/hf_io.h"

#include <filesystem>

#include "core/error.h"
#include "core/json_file.h"
#include "core/log.h"
#include "model/gpt2.h"
#include "ckpt/hf_gpt2.h"
#include "model/safetensors.h"
#include "tokenizer/gpt2_files.h"
#include "ckpt/checkpoint.h"
#include "ckpt/copy_into.h"
#include "ckpt/load_model.h"
#include "data/loader.h"  // Cursor

namespace kiln::ckpt {

namespace fs = std::filesystem;

namespace {

void need_file(const std::string& path, const std::string& what) {
  if (!fs::is_regular_file(path))
    throw Error("[import] " + path + " does not exist (" + what + ")",
                "point --from at a Hugging Face GPT-2 directory (config.json, model.safetensors; "
                "data_tools/fetch_gpt2.sh downloads one)");
}

}  // namespace

std::string import_hf_gpt2(const std::string& hf_dir, const std::string& out_dir, const std::string& tokenizer_json) {
  const std::string cfg_path = hf_dir + "/config.json", st_path = hf_dir + "/model.safetensors";
  need_file(cfg_path, "the model's config");
  need_file(st_path, "the weights; a pytorch_model.bin alone is not read: save with safe_serialization=True");
  model::GPT2Config g = read_hf_gpt2_config(cfg_path);

  tok::Tokenizer tokenizer;
  if (!tokenizer_json.empty()) {
    tokenizer = tok::Tokenizer::load(tokenizer_json);
  } else {
    const std::string v = hf_dir + "/vocab.json", m = hf_dir + "/merges.txt";
    if (!fs::is_regular_file(v) || !fs::is_regular_file(m))
      throw Error("[import] " + hf_dir + " has no vocab.json + merges.txt",
                  "copy GPT-2's tokenizer files there, or give a kiln tokenizer with --tokenizer FILE");
    tokenizer = tok::import_gpt2_files(v, m);
  }
  if (int64_t(tokenizer.vocab_size()) > g.vocab_size)
    throw Error("[import] " + cfg_path + ": vocab_size " + std::to_string(g.vocab_size) + " is smaller than the tokenizer's " +
                    std::to_string(tokenizer.vocab_size()) + " tokens",
                "use the tokenizer the model was trained with");

  const std::string yaml = "model:\n  arch: gpt2\n  depth: " + std::to_string(g.n_layer) +
                           "\n  width: " + std::to_string(g.n_embd) + "\n  n_head: " + std::to_string(g.n_head) +
                           "\n  n_ctx: " + std::to_string(g.n_ctx) + "\n  seq_len: " + std::to_string(g.n_ctx) +
                           "\n  vocab_size: " + std::to_string(g.vocab_size) + "\ntrain:\n  device_batch_size: 1\n"
                           "  total_batch_size: " + std::to_string(g.n_ctx) + "\n";
  const Config cfg = load_config_text(yaml, "[import] " + cfg_path);

  auto hf = model::load_safetensors(st_path);
  auto weights = hf_to_kiln(hf, g, st_path);
  model::GPT2Impl net(model::GPT2Config::from(cfg.model, tokenizer.vocab_size()), torch::kCPU);
  CheckpointWrite w;
  copy_into(model::named_parameters_of(net), weights, Strictness::Exact, "[import] " + st_path);
  for (auto& p : net.named_parameters()) w.model.emplace_back(p.key(), p.value().detach());
  // save_checkpoint copies the tokenizer from a file: write it beside the output first.
  fs::create_directories(out_dir);
  const std::string tok_tmp = out_dir + "/.import_tokenizer.json";
  tokenizer.save(tok_tmp);
  w.step = 0;
  w.rank_state = {{"step", 0}, {"rank", 0}, {"cursor", data::Cursor().to_json()}};
  w.meta = {{"config", to_yaml(cfg)},
            {"stage", "import"},
            {"lineage", {{"imported_from", fs::absolute(hf_dir).string()}}},
            {"tokenizer_sha256", tokenizer.sha256()},
            {"total_steps", 0},
            {"stopped_early", false},
            {"device", "cpu"},
            {"metrics", nlohmann::json::object()},
            {"created_by", std::string("kiln import (LibTorch ") + KILN_TORCH_VERSION + ")"}};
  w.tokenizer_path = tok_tmp;
  const std::string step_dir = save_checkpoint(out_dir, w, 0);
  fs::remove(tok_tmp);
  return step_dir;
}

void write_hf_gpt2(model::LM& net, const tok::Tokenizer& tokenizer, const std::string& out_dir) {
  auto* g = dynamic_cast<model::GPT2Impl*>(&net);
  if (!g)
    throw Error("[export] the model is model.arch = " + net.arch(),
                "./export writes Hugging Face GPT-2 (GPT2LMHeadModel); train or import a model.arch: gpt2 model");
  fs::create_directories(out_dir);
  const std::string st = out_dir + "/model.safetensors";
  model::save_safetensors(st + ".tmp", kiln_to_hf(model::named_parameters_of(*g)), {{"format", "pt"}});
  fs::rename(st + ".tmp", st);
  write_text_file(out_dir + "/config.json", hf_gpt2_config(g->config(), tokenizer.bos_id()).dump(2) + "\n");
  try {
    tok::write_gpt2_files(tokenizer, out_dir);
    const std::string eot = tokenizer.specials().front();
    const nlohmann::ordered_json tc = {{"tokenizer_class", "GPT2Tokenizer"},
                                       {"model_max_length", g->config().n_ctx},
                                       {"bos_token", eot},
                                       {"eos_token", eot},
                                       {"unk_token", eot},
                                       {"add_prefix_space", false},
                                       {"add_bos_token", false}};
    write_text_file(out_dir + "/tokenizer_config.json", tc.dump(2) + "\n");
  } catch (const Error& e) {
    log::warn("[export] model written without tokenizer files: %s", e.what());
  }
}

std::string export_hf_gpt2(const std::string& ckpt_path, const std::string& out_dir) {
  LoadedModel m = load_model(ckpt_path, torch::kCPU);
  if (m.model->arch() != "gpt2")
    throw Error("[export] " + m.dir + " is a model.arch = " + m.model->arch() + " checkpoint",
                "./export writes Hugging Face GPT-2 (GPT2LMHeadModel); train or import a model.arch: gpt2 model");
  write_hf_gpt2(*m.model, *m.tokenizer, out_dir);
  return m.dir;
}

}  // namespace kiln::ckpt
