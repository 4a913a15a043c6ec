// See lineage.h. The shape check works on the typed config: Config::given says which model keys
// the stage's file or overrides set, so "unset" and "set to the default" are told apart.
#include "train/lineage.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "core/sha256.h"
#include "ckpt/checkpoint.h"

namespace kiln::train {

std::string resolve_parent_dir(const std::string& from) {
  try {
    return ckpt::find_latest_checkpoint(from);
  } catch (const Error& e) {
    throw Error(std::string("init.from = \"") + from + "\": " + e.what(),
                "point init.from at the previous stage's checkpoint dir (e.g. runs/tiny/ckpt), a step_* dir in "
                "it, or its run dir");
  }
}

Parent read_parent(const std::string& step_dir) {
  Parent p;
  p.step_dir = step_dir;
  p.meta_path = step_dir + "/meta.json";
  std::ifstream in(p.meta_path, std::ios::binary);
  if (!in) throw Error("init.from: cannot read " + p.meta_path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  p.meta_sha256 = sha256_hex(bytes);
  p.meta = nlohmann::json::parse(bytes);
  p.step = p.meta.value("step", int64_t(0));
  return p;
}

void adopt_parent_shape(Config& cfg, const Parent& p) {
  const Config parent = load_config_text(p.meta.at("config").get<std::string>(), p.meta_path);
  struct Key {
    const char* name;
    std::function<std::string(const ModelConfig&)> get;
    std::function<void(ModelConfig&, const ModelConfig&)> copy;
  };
#define KILN_MODEL_KEY(k) \
  Key { "model." #k, [](const ModelConfig& m) { std::ostringstream o; o << m.k; return o.str(); }, \
        [](ModelConfig& to, const ModelConfig& from) { to.k = from.k; } }
  const Key keys[] = {KILN_MODEL_KEY(depth),     KILN_MODEL_KEY(width),   KILN_MODEL_KEY(n_head),
                      KILN_MODEL_KEY(n_kv_head), KILN_MODEL_KEY(vocab_size), KILN_MODEL_KEY(softcap),
                      KILN_MODEL_KEY(rope_base), KILN_MODEL_KEY(seq_len),   KILN_MODEL_KEY(arch),
                      KILN_MODEL_KEY(size),      KILN_MODEL_KEY(n_ctx),     KILN_MODEL_KEY(norm_eps),
                      KILN_MODEL_KEY(window_pattern), KILN_MODEL_KEY(short_window)};  // nanochat2
#undef KILN_MODEL_KEY
  auto given = [&](const std::string& k) { return std::find(cfg.given.begin(), cfg.given.end(), k) != cfg.given.end(); };
  for (const auto& k : keys) {
    const bool is_seq = std::string(k.name) == "model.seq_len";
    if (!given(k.name)) {
      k.copy(cfg.model, parent.model);
      continue;
    }
    if (!is_seq && k.get(cfg.model) != k.get(parent.model))
      throw Error(cfg.source + " sets " + k.name + " = " + k.get(cfg.model) + " but the parent checkpoint " +
                      p.meta_path + " has " + k.name + " = " + k.get(parent.model),
                  std::string("a stage takes its model shape from init.from: remove ") + k.name + " from " + cfg.source +
                      " (model.seq_len alone may change)");
  }
  // A later stage must at least fit what the resolved values require.
  derive_shape(cfg.model);
}

void check_parent_tokenizer(const Parent& p, const std::string& tokenizer_path, const std::string& sha256) {
  const std::string want = p.meta.value("tokenizer_sha256", "");
  if (want != sha256)
    throw Error("data.tokenizer = " + tokenizer_path + " (sha256 " + sha256.substr(0, 12) +
                    "...) is not the tokenizer the parent checkpoint " + p.meta_path + " was trained with (sha256 " +
                    want.substr(0, std::min<size_t>(12, want.size())) + "...)",
                "use the parent's tokenizer (a copy is in " + p.step_dir +
                    "/tokenizer.json) and shards prepared with it");
}

nlohmann::json lineage_of(const Parent& p) {
  return {{"parent", p.step_dir},
          {"step", p.step},
          {"meta_sha256", p.meta_sha256},
          {"stage", stage_of(p.meta)},
          {"lineage", p.meta.contains("lineage") ? p.meta["lineage"] : nlohmann::json()}};
}

std::string stage_of(const nlohmann::json& meta) {
  return meta.contains("stage") && meta["stage"].is_string() ? meta["stage"].get<std::string>() : "pretrain";
}

void check_resume_stage(const nlohmann::json& meta, const std::string& ckpt_dir, const std::string& stage) {
  const std::string was = stage_of(meta);
  if (was != stage)
    throw Error("--resume " + ckpt_dir + ": that is a " + was + " checkpoint (" + ckpt_dir +
                    "/meta.json says stage \"" + was + "\"), and this is ./" + stage,
                "resume it with ./" + was + " --resume " + ckpt_dir + "; to start a " + stage +
                    " run from it, set init.from in a " + stage + " config");
}

}  // namespace kiln::train
