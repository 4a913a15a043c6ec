// See hf_io.h. Import builds the run config as YAML text and loads it like any config, so an
// imported checkpoint carries a config that validates; the weights go through the model's own
// parameters (names and shapes checked twice: by the table and by the module). Everything is
// read and checked before the first file is written, so a refused import or export leaves --out
// untouched.
#include "ckpt/hf_io.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/json_file.h"
#include "core/log.h"
#include "model/gpt2.h"
#include "ckpt/hf_gpt2.h"
#include "ckpt/hf_nanochat.h"
#include "model/gpt.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "model/safetensors.h"
#include "tokenizer/gpt2_files.h"
#include "ckpt/checkpoint.h"
#include "ckpt/copy_into.h"
#include "ckpt/load_model.h"
#include "data/loader.h"  // Cursor

namespace kiln::ckpt {

namespace fs = std::filesystem;

namespace {

void need_file(const std::string& path, const std::string& what, const std::string& arch = "gpt2") {
  if (!fs::is_regular_file(path))
    throw Error("[import] " + path + " does not exist (" + what + ")",
                arch == "gpt2" ? "point --from at a Hugging Face GPT-2 directory (config.json, model.safetensors; "
                                 "data_tools/fetch_gpt2.sh downloads one)"
                               : "point --from at a Hugging Face NanoChat directory (config.json, model.safetensors, "
                                 "tokenizer.json; what ./export or save_pretrained writes)");
}

// A double as YAML that reads back to the same value.
std::string num(double v) {
  char b[40];
  snprintf(b, sizeof b, "%.17g", v);
  return b;
}

// Writes the imported model (weights already in `net`) and its tokenizer as out_dir/step_00000000
// with the run config `yaml`; lineage names hf_dir (plus `lineage_extra`).
std::string save_import(model::LM& net, const tok::Tokenizer& tokenizer, const Config& cfg, const std::string& hf_dir,
                        const std::string& out_dir, const nlohmann::json& lineage_extra = nlohmann::json::object()) {
  CheckpointWrite w;
  for (auto& p : net.named_parameters()) w.model.emplace_back(p.key(), p.value().detach());
  // save_checkpoint copies the tokenizer from a file: write it beside the output first.
  fs::create_directories(out_dir);
  const std::string tok_tmp = out_dir + "/.import_tokenizer.json";
  tokenizer.save(tok_tmp);
  nlohmann::json lineage = {{"imported_from", fs::absolute(hf_dir).string()}};
  lineage.update(lineage_extra);
  w.step = 0;
  w.rank_state = {{"step", 0}, {"rank", 0}, {"cursor", data::Cursor().to_json()}};
  w.meta = {{"config", to_yaml(cfg)},
            {"stage", "import"},
            {"lineage", lineage},
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

// kiln's chat format needs these specials (chat.h), <|bos|> first (Tokenizer::bos_id).
void require_chat_specials(const tok::Tokenizer& t, const std::string& file) {
  for (const auto& name : tok::special_tokens())
    if (!t.find_special(name))
      throw Error("[import] " + file + " has no special token '" + name + "'",
                  "kiln's chat format needs <|bos|>, <|user_start|>, <|user_end|>, <|assistant_start|>, "
                  "<|assistant_end|>, <|python_start|>, <|python_end|>, <|output_start|>, <|output_end|>");
  if (t.specials().front() != "<|bos|>")
    throw Error("[import] " + file + ": the first special token is '" + t.specials().front() + "', not '<|bos|>'",
                "kiln starts every document with the first special token; nanochat's tokenizers list <|bos|> first");
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
  copy_into(model::named_parameters_of(net), weights, Strictness::Exact, "[import] " + st_path);
  return save_import(net, tokenizer, cfg, hf_dir, out_dir);
}

std::string import_hf_nanochat(const std::string& hf_dir, const std::string& out_dir) {
  const std::string cfg_path = hf_dir + "/config.json", st_path = hf_dir + "/model.safetensors",
                    tok_path = hf_dir + "/tokenizer.json", tc_path = hf_dir + "/tokenizer_config.json",
                    gen_path = hf_dir + "/generation_config.json";
  need_file(cfg_path, "the model's config", "nanochat");
  need_file(st_path, "the weights; a pytorch_model.bin alone is not read: save with safe_serialization=True", "nanochat");
  need_file(tok_path, "the tokenizer, in the tokenizers library's format", "nanochat");
  const model::GPTConfig g = read_hf_nanochat_config(cfg_path);
  const tok::Tokenizer tokenizer = tok::read_hf_tokenizer_json(tok_path);
  require_chat_specials(tokenizer, tok_path);
  if (int64_t(tokenizer.vocab_size()) > g.vocab_size)
    throw Error("[import] " + cfg_path + ": vocab_size " + std::to_string(g.vocab_size) + " is smaller than " + tok_path +
                    "'s " + std::to_string(tokenizer.vocab_size()) + " tokens",
                "config.json and tokenizer.json do not belong together");
  // A chat model: its generation stops at <|assistant_end|> (generation_config.json or the
  // tokenizer's eos_token). kiln renders chats with its own format, nanochat's; a template that
  // does not use its tokens is reported, since transformers would render differently.
  const int64_t ae = tokenizer.special_id("<|assistant_end|>");
  bool chat = false;
  if (fs::is_regular_file(gen_path)) {
    const nlohmann::json gc = read_json_file(gen_path);
    const nlohmann::json eos = gc.is_object() ? gc.value("eos_token_id", nlohmann::json()) : nlohmann::json();
    chat = eos == ae || (eos.is_array() && std::find(eos.begin(), eos.end(), ae) != eos.end());
  }
  if (fs::is_regular_file(tc_path)) {
    const nlohmann::json tc = read_json_file(tc_path);
    chat = chat || (tc.is_object() && tc.value("eos_token", nlohmann::json()) == "<|assistant_end|>");
    const std::string tpl = tc.is_object() ? tc.value("chat_template", std::string()) : "";
    if (!tpl.empty() && tpl.find("<|assistant_start|>") == std::string::npos)
      log::warn("[import] %s: the chat_template does not use <|assistant_start|>; kiln renders chats in nanochat's format",
                tc_path.c_str());
  }
  // model.vocab_size 0 (the tokenizer's) when the two agree, as a trained model's config: the
  // import can then be trained further (the Trainer wants the tokenizer's size).
  const int64_t vocab = g.vocab_size == int64_t(tokenizer.vocab_size()) ? 0 : g.vocab_size;
  const std::string yaml = "model:\n  arch: nanochat\n  depth: " + std::to_string(g.n_layer) +
                           "\n  width: " + std::to_string(g.n_embd) + "\n  n_head: " + std::to_string(g.n_head) +
                           "\n  n_kv_head: " + std::to_string(g.n_kv_head) + "\n  seq_len: " + std::to_string(g.seq_len) +
                           "\n  vocab_size: " + std::to_string(vocab) + "\n  softcap: " + num(g.softcap) +
                           "\n  rope_base: " + num(g.rope_base) + "\n  norm_eps: " + num(g.norm_eps) +
                           "\ntrain:\n  device_batch_size: 1\n  total_batch_size: " + std::to_string(g.seq_len) + "\n";
  const Config cfg = load_config_text(yaml, "[import] " + cfg_path);
  auto weights = hf_nanochat_to_kiln(model::load_safetensors(st_path), g, st_path);
  model::GPTImpl net(model::GPTConfig::from(cfg.model, tokenizer.vocab_size()), torch::kCPU);
  copy_into(model::named_parameters_of(net), weights, Strictness::Exact, "[import] " + st_path);
  return save_import(net, tokenizer, cfg, hf_dir, out_dir, {{"chat", chat}});
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

void write_hf_nanochat(model::LM& net, const tok::Tokenizer& tokenizer, const std::string& out_dir, bool chat) {
  auto* g = dynamic_cast<model::GPTImpl*>(&net);
  if (!g) throw Error("[export] the model is model.arch = " + net.arch() + ", not nanochat");
  const model::GPTConfig& c = g->config();
  // Everything in memory first: a refusal leaves out_dir untouched.
  const model::NamedTensors tensors = kiln_to_hf_nanochat(model::named_parameters_of(*g), c);
  const int64_t bos = tokenizer.bos_id();
  const auto ae = tokenizer.find_special("<|assistant_end|>");
  const bool chat_tokens = ae && tokenizer.find_special("<|assistant_start|>") && tokenizer.find_special("<|user_start|>");
  // Generation stops where kiln's engine stops: <|assistant_end|> (then <|bos|>) for a chat
  // model, the next document's <|bos|> for a base model.
  HfTokenIds ids{bos, chat && ae ? nlohmann::ordered_json::array({int64_t(*ae), bos}) : nlohmann::ordered_json(bos), bos};
  const std::string bos_tok = tokenizer.specials().front();
  nlohmann::ordered_json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                               {"model_max_length", c.seq_len},
                               {"bos_token", bos_tok},
                               {"eos_token", chat && ae ? "<|assistant_end|>" : bos_tok},
                               {"pad_token", bos_tok},
                               {"clean_up_tokenization_spaces", false}};
  if (chat_tokens) tc["chat_template"] = tok::hf_chat_template();
  const nlohmann::ordered_json gen = {{"bos_token_id", ids.bos}, {"eos_token_id", ids.eos}, {"pad_token_id", ids.pad}};
  const std::string tokenizer_json = tok::hf_tokenizer_json(tokenizer).dump();
  fs::create_directories(out_dir);
  const std::string st = out_dir + "/model.safetensors";
  model::save_safetensors(st + ".tmp", tensors, {{"format", "pt"}});
  fs::rename(st + ".tmp", st);
  write_text_file(out_dir + "/config.json", hf_nanochat_config(c, ids).dump(2) + "\n");
  write_text_file(out_dir + "/generation_config.json", gen.dump(2) + "\n");
  write_text_file(out_dir + "/tokenizer.json", tokenizer_json);
  write_text_file(out_dir + "/tokenizer_config.json", tc.dump(2) + "\n");
}

std::string export_hf(const std::string& ckpt_path, const std::string& out_dir) {
  LoadedModel m = load_model(ckpt_path, torch::kCPU);
  if (m.model->arch() == "gpt2") {
    write_hf_gpt2(*m.model, *m.tokenizer, out_dir);
    return m.dir;
  }
  // A chat model: trained by ./midtrain or ./sft, or imported as one.
  const nlohmann::json meta = read_json_file(m.dir + "/meta.json");
  const std::string stage = meta.value("stage", std::string());
  const bool chat = stage == "midtrain" || stage == "sft" ||
                    (meta.contains("lineage") && meta["lineage"].is_object() && meta["lineage"].value("chat", false));
  write_hf_nanochat(*m.model, *m.tokenizer, out_dir, chat);
  return m.dir;
}

}  // namespace kiln::ckpt
