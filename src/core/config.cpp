// YAML -> Config: one table of keys drives parsing, range checks, overrides, the YAML dump and
// --help-config (see config.h). Errors name the file, the line/column when YAML knows it, the key
// path and the bad value, and suggest the nearest valid key for typos.
#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <variant>

#include "core/error.h"

namespace kiln {
namespace {

using Ref = std::variant<int64_t*, double*, bool*, std::string*, DataSources*>;

struct Field {
  std::string path;                   // "train.max_steps"
  std::function<Ref(Config&)> ref;    // where the value lives
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;   // for strings; empty = any
  std::string help;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

#define KILN_F(sec, key, lo, hi, help) \
  Field { #sec "." #key, [](Config& c) -> Ref { return &c.sec.key; }, lo, hi, {}, help }
#define KILN_S(sec, key, choices, help) \
  Field { #sec "." #key, [](Config& c) -> Ref { return &c.sec.key; }, -kInf, kInf, choices, help }

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      KILN_S(run, name, {}, "run name (default: the config file's name)"),
      KILN_S(run, dir, {}, "output directory (default: runs/<run.name>)"),
      KILN_F(run, seed, 0, 4294967295.0, "seed of every RNG in the run"),
      KILN_S(run, device, (std::vector<std::string>{"auto", "cpu", "cuda"}), "where to train"),
      KILN_S(init, from, {}, "start from this checkpoint's weights (dir, step dir or run dir; \"\": fresh init)"),
      KILN_F(init, optimizer, -kInf, kInf, "with init.from: also load its optimizer state (warm start)"),
      KILN_S(model, arch, (std::vector<std::string>{"nanochat", "nanochat2", "gpt2"}),
             "architecture: nanochat (V1: rotary, RMSNorm, relu^2, Muon), nanochat2 (nanochat's current model: "
             "sliding windows, value embeddings, lambdas, smear, backout) or gpt2 (OpenAI's GPT-2)"),
      KILN_S(model, size, (std::vector<std::string>{"", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}),
             "arch gpt2: a named size (sets depth/width/n_head); \"\": from depth/width/n_head"),
      KILN_F(model, depth, 1, 256, "the one dial: layers; width = 64*depth, heads = ceil(width/128) (gpt2: width/64)"),
      KILN_F(model, width, 0, 65536, "model width (0: 64*depth)"),
      KILN_F(model, n_head, 0, 1024, "attention heads (0: ceil(width/128))"),
      KILN_F(model, n_kv_head, 0, 1024, "key/value heads for GQA (0: n_head)"),
      KILN_F(model, seq_len, 1, 1048576, "context length in tokens"),
      KILN_F(model, vocab_size, 0, 4294967296.0, "vocabulary size (0: from the tokenizer)"),
      KILN_F(model, softcap, 0, 1e6, "logit softcap c: c*tanh(x/c), 0 disables"),
      KILN_F(model, rope_base, 1, 1e12, "rotary embedding base"),
      KILN_F(model, norm_eps, 0, 1, "RMSNorm epsilon (0: the dtype's machine epsilon, as nanochat; imports set it)"),
      KILN_F(model, n_ctx, 0, 1048576, "arch gpt2: learned positions (0: 1024); model.seq_len <= n_ctx"),
      KILN_F(model, dropout, 0, 0.999, "arch gpt2: dropout while training (embeddings, attention, residuals)"),
      // arch nanochat2 (issue 22)
      KILN_S(model, window_pattern, {}, "arch nanochat2: per-layer attention windows, S (short) / L (full), tiled; "
             "the last layer is always L"),
      KILN_F(model, short_window, 0, 1048576, "arch nanochat2: the S window in tokens (0: ceil(seq_len/4/128)*128)"),
      KILN_S(data, tokenizer, {}, "tokenizer JSON written by ./tokenizer train"),
      KILN_S(data, train, {}, "training shards: a directory or glob of .h5 files, or a list of {path, repeat}"),
      KILN_S(data, val, {}, "validation shards: a directory or glob of .h5 files, or a list of {path, repeat}"),
      KILN_S(data, layout, (std::vector<std::string>{"auto", "packed", "padded", "bestfit"}),
             "rows: packed windows, one padded conversation per row (auto: padded for sft), or bestfit "
             "(pretraining: every row starts at a document's BOS, documents packed best-fit, cropped when none fits)"),
      KILN_S(data, train_on, (std::vector<std::string>{"assistant", "all"}),
             "chat shards: train on assistant tokens only (masked) or on every token"),
      KILN_F(train, max_steps, -1, 1e15, "optimizer steps (-1: from train.epochs, else target_param_data_ratio)"),
      KILN_F(train, epochs, 0, 1e6, "passes over data.train when max_steps = -1 (chat stages; 0: unused)"),
      KILN_F(train, target_param_data_ratio, 0, 1e6, "tokens per parameter when max_steps = -1"),
      KILN_F(train, device_batch_size, 1, 1e9, "sequences per rank per micro-step"),
      KILN_F(train, total_batch_size, -1, 1e15, "tokens per optimizer step over all ranks (-1: auto, nanochat's D^0.383 rule)"),
      KILN_F(train, grad_clip, 0, 1e9, "clip the global gradient norm to this (0: off)"),
      KILN_S(train, dtype, (std::vector<std::string>{"auto", "float32", "bfloat16"}),
             "compute dtype (auto: bf16 autocast on CUDA, fp32 on CPU)"),
      KILN_F(train, skip_nonfinite, 0, 1, "on a NaN/Inf loss or gradient: false stops (default), true skips the step"),
      KILN_F(train, fp8, -kInf, kInf,
             "FP8 matmuls in training (tensorwise scaling, nanochat's fp8.py): CUDA with compute capability 8.9+"),
      KILN_S(optim, recipe, (std::vector<std::string>{"nanochat", "adamw", "muon_adamw"}),
             "nanochat: Muon on matrices + AdamW (embedding_lr, unembedding_lr); adamw: GPT-2's AdamW only (optim.lr); "
             "muon_adamw: nanochat's current MuonAdamW (NorMuon, Polar Express, cautious weight decay)"),
      KILN_F(optim, lr, 0, 1e3, "recipe adamw: learning rate (weight_decay on matrices and embeddings only)"),
      KILN_F(optim, matrix_lr, 0, 1e3, "Muon learning rate for the block matrices"),
      KILN_F(optim, embedding_lr, 0, 1e3, "AdamW learning rate for the embedding"),
      KILN_F(optim, unembedding_lr, 0, 1e3, "AdamW learning rate for the head"),
      KILN_F(optim, weight_decay, 0, 1e3, "AdamW weight decay"),
      KILN_F(optim, adam_beta1, 0, 1, "AdamW beta1"),
      KILN_F(optim, adam_beta2, 0, 1, "AdamW beta2"),
      KILN_F(optim, adam_eps, 0, 1, "AdamW epsilon"),
      KILN_F(optim, muon_momentum_start, 0, 1, "Muon momentum at step 0"),
      KILN_F(optim, muon_momentum_end, 0, 1, "Muon momentum after the warmup"),
      KILN_F(optim, muon_momentum_warmup, 0, 1e12, "steps of the Muon momentum warmup"),
      KILN_F(optim, ns_steps, 1, 100, "Newton-Schulz iterations in Muon"),
      KILN_F(optim, warmup_ratio, 0, 1, "fraction of steps of linear LR warmup"),
      KILN_F(optim, warmdown_ratio, 0, 1, "fraction of steps of linear LR warmdown at the end"),
      KILN_F(optim, final_lr_frac, 0, 1, "LR multiplier at the last step"),
      KILN_F(optim, init_lr_frac, 0, 1e3, "every learning rate times this (nanochat SFT: 0.02)"),
      // ---- nanochat's current recipe (optim.recipe muon_adamw, issue 22) ----
      KILN_F(optim, scalar_lr, 0, 1e3, "muon_adamw: AdamW lr of the x0 lambdas (resid lambdas: 0.01x)"),
      KILN_F(optim, muon_beta2, 0, 1, "muon_adamw: NorMuon second-moment decay"),
      KILN_F(optim, warmup_steps, -1, 1e12, "LR warmup in steps (-1: optim.warmup_ratio)"),
      KILN_F(optim, muon_momentum_final, -1, 1, "Muon momentum at the last step, linear over the LR warmdown (-1: none)"),
      KILN_S(optim, weight_decay_schedule, (std::vector<std::string>{"constant", "cosine"}),
             "Muon weight decay over the run: constant, or cosine from weight_decay to 0 (muon_adamw)"),
      KILN_F(optim, batch_lr_scale, -1, 1e6, "every LR times this (-1: sqrt(train.total_batch_size / 2^19), resolved at start)"),
      KILN_F(optim, weight_decay_scale, -1, 1e6,
             "weight_decay times this (-1: sqrt(B / 2^19) * D_ref / D of nanochat's d12, resolved at start)"),
      KILN_S(checkpoint, dir, {}, "checkpoint directory (default: <run.dir>/ckpt)"),
      KILN_F(checkpoint, every, 0, 1e15, "checkpoint every k steps (0: only at the end)"),
      KILN_F(checkpoint, keep_last, 0, 1e9, "keep the newest k checkpoints (0: all)"),
      KILN_F(eval, every, 0, 1e15, "validation bits-per-byte every k steps (0: off)"),
      KILN_F(eval, tokens, 1, 1e15, "validation tokens per evaluation"),
      KILN_F(eval, sample_every, 0, 1e15, "print samples every k steps (0: off)"),
      KILN_F(eval, sample_tokens, 1, 1e6, "tokens per sample"),
      KILN_F(eval, core_every, 0, 1e15, "CORE (./eval --task core) every k steps and at the last step (0: off)"),
      KILN_F(eval, core_max_per_task, -1, 1e15, "CORE during training: the first N items of each task (-1: all)"),
      KILN_S(eval, core_bundle, {}, "CORE during training: the eval bundle dir (data_tools/fetch.sh core DIR)"),
      KILN_S(dist, backend, (std::vector<std::string>{"auto", "nccl", "mpi"}),
             "gradient communication (auto: nccl for CUDA, mpi for CPU)"),
      KILN_F(dist, bucket_mb, 0.001, 1e6, "gradient all-reduce bucket size in MB"),
      KILN_F(dist, zero1, -kInf, kInf, "shard optimizer state over ranks (ZeRO-1)"),
      KILN_F(dist, timeout_s, 1, 1e7, "abort the job when a collective exceeds this"),
      KILN_F(log, every, 1, 1e15, "console progress line every k steps"),
      KILN_F(log, tensorboard, -kInf, kInf, "also write TensorBoard event files under <run.dir>/tb/"),
      // ---- ./rl (issue 25) ----
      KILN_S(rl, train, {}, "./rl: GSM8K JSONL of the training questions"),
      KILN_S(rl, val, {}, "./rl: held-out GSM8K JSONL for pass@k every eval.every steps (\"\": none)"),
      KILN_F(rl, examples_per_step, 1, 1e9, "./rl: questions per step over all ranks (a multiple of the ranks)"),
      KILN_F(rl, num_samples, 1, 1e9, "./rl: completions per question (a multiple of train.device_batch_size)"),
      KILN_F(rl, max_new_tokens, 1, 1e9, "./rl: tokens per completion at most"),
      KILN_F(rl, temperature, 0, 1e3, "./rl: sampling temperature"),
      KILN_F(rl, top_k, 0, 1e9, "./rl: top-k sampling (0: all tokens)"),
      KILN_S(rl, reward, (std::vector<std::string>{"gsm8k", "format"}),
             "./rl: gsm8k (the answer rule of ./eval) | format (1 for any '#### <number>' answer)"),
      KILN_F(rl, eval_examples, 1, 1e9, "./rl: pass@k on the first N questions of rl.val"),
      KILN_F(rl, eval_samples, 0, 1e9, "./rl: k of pass@k (0: train.device_batch_size)"),
  };
  return table;
}
#undef KILN_F
#undef KILN_S

const std::vector<std::string> kSections = {"run", "init", "model", "data", "train", "optim",
                                            "checkpoint", "eval", "dist", "log", "rl"};

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(const std::string& wrong, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    size_t d = edit_distance(wrong, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

const Field* find_field(const std::string& path) {
  for (const auto& f : fields())
    if (f.path == path) return &f;
  return nullptr;
}

std::string where(const std::string& source, const YAML::Mark& m) {
  if (m.is_null()) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::string type_name(const Ref& r) {
  return std::visit(
      [](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, int64_t>) return "an integer";
        else if constexpr (std::is_same_v<T, double>) return "a number";
        else if constexpr (std::is_same_v<T, bool>) return "a boolean (true/false)";
        else if constexpr (std::is_same_v<T, DataSources>) return "a path or a list of {path, repeat}";
        else return "a string";
      },
      r);
}

std::string format_double(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);  // shortest text that round-trips
  std::string s(buf, res.ptr);
  return s;
}

// A data source list: "path", null/"" (none), or a list of "path" / {path: P, repeat: N}.
DataSources parse_sources(const YAML::Node& node, const std::string& key, const std::string& at) {
  DataSources out;
  if (node.IsNull()) return out;
  if (node.IsScalar()) {
    if (!node.Scalar().empty()) out.push_back({node.Scalar(), 1});
    return out;
  }
  const std::string hint = "write " + key + ": PATH, or a list like [{path: data/a/train_*.h5, repeat: 2}, ...]";
  if (!node.IsSequence()) throw Error(at + ": " + key + ": expected a path or a list of sources", hint);
  for (const auto& item : node) {
    const std::string here = where(at.substr(0, at.find(':')), item.Mark());
    if (item.IsScalar()) {
      out.push_back({item.Scalar(), 1});
      continue;
    }
    if (!item.IsMap()) throw Error(here + ": " + key + ": a source must be a path or {path, repeat}", hint);
    DataSource s;
    for (auto kv = item.begin(); kv != item.end(); ++kv) {
      const std::string k = kv->first.as<std::string>();
      const YAML::Node v = kv->second;  // a copy: kv-> yields a temporary (ASan: use-after-scope)
      if (k == "path" && v.IsScalar()) {
        s.path = v.Scalar();
      } else if (k == "repeat" && v.IsScalar()) {
        const std::string& t = v.Scalar();
        auto res = std::from_chars(t.data(), t.data() + t.size(), s.repeat);
        if (res.ec != std::errc() || res.ptr != t.data() + t.size() || s.repeat < 1)
          throw Error(here + ": " + key + ": repeat = \"" + t + "\": expected an integer >= 1", hint);
      } else {
        throw Error(here + ": " + key + ": unknown or malformed source key '" + k + "' (a source has path and repeat)",
                    hint);
      }
    }
    if (s.path.empty()) throw Error(here + ": " + key + ": a source without a path", hint);
    out.push_back(s);
  }
  return out;
}

// Parse one scalar into the field's member; `at` names the place for error messages.
void set_value(Config& cfg, const Field& f, const YAML::Node& node, const std::string& at) {
  Ref r = f.ref(cfg);
  if (std::find(cfg.given.begin(), cfg.given.end(), f.path) == cfg.given.end()) cfg.given.push_back(f.path);
  std::string shown = node.IsScalar() ? node.Scalar() : "";
  auto fail = [&](const std::string& why) {
    throw Error(at + ": " + f.path + " = \"" + shown + "\": " + why);
  };
  if (node.IsNull() && std::holds_alternative<std::string*>(r)) {
    *std::get<std::string*>(r) = "";
    return;
  }
  if (auto* p = std::get_if<DataSources*>(&r)) {
    **p = parse_sources(node, f.path, at);
    return;
  }
  if (!node.IsScalar()) {
    shown = node.IsMap() ? "{...}" : node.IsSequence() ? "[...]" : "";
    fail("expected " + type_name(r) + ", got " +
         (node.IsMap() ? "a mapping" : node.IsSequence() ? "a list" : "nothing"));
  }
  const std::string& s = node.Scalar();
  if (auto* p = std::get_if<int64_t*>(&r)) {
    int64_t v = 0;
    auto res = std::from_chars(s.data(), s.data() + s.size(), v);
    if (res.ec != std::errc() || res.ptr != s.data() + s.size()) fail("expected an integer");
    if (v < f.min || v > f.max)
      fail("out of range: expected " + format_double(f.min) + " <= value <= " + format_double(f.max));
    **p = v;
  } else if (auto* p = std::get_if<double*>(&r)) {
    double v = 0;
    auto res = std::from_chars(s.data(), s.data() + s.size(), v);
    if (res.ec != std::errc() || res.ptr != s.data() + s.size() || !std::isfinite(v))
      fail("expected a number");
    if (v < f.min || v > f.max)
      fail("out of range: expected " + format_double(f.min) + " <= value <= " + format_double(f.max));
    **p = v;
  } else if (auto* p = std::get_if<bool*>(&r)) {
    bool v = false;
    if (!YAML::convert<bool>::decode(node, v)) fail("expected a boolean (true/false)");
    **p = v;
  } else if (auto* p = std::get_if<std::string*>(&r)) {
    if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end()) {
      std::string list;
      for (const auto& c : f.choices) list += (list.empty() ? "" : ", ") + c;
      fail("expected one of: " + list);
    }
    **p = s;
  }
}

void apply_yaml(Config& cfg, const YAML::Node& root, const std::string& source) {
  if (root.IsNull()) return;
  if (!root.IsMap())
    throw Error(where(source, root.Mark()) + ": the config must be a mapping of sections (run:, model:, ...)");
  for (auto sec = root.begin(); sec != root.end(); ++sec) {
    const std::string name = sec->first.as<std::string>();
    if (std::find(kSections.begin(), kSections.end(), name) == kSections.end())
      throw Error(where(source, sec->first.Mark()) + ": unknown section '" + name +
                  "' — did you mean '" + nearest(name, kSections) + "'?");
    const YAML::Node body = sec->second;  // a copy: sec->second is a temporary (use-after-scope found by tests/fuzz)
    if (body.IsNull()) continue;
    if (!body.IsMap())
      throw Error(where(source, body.Mark()) + ": section '" + name + "' must be a mapping of keys");
    for (auto kv = body.begin(); kv != body.end(); ++kv) {
      const std::string path = name + "." + kv->first.as<std::string>();
      const Field* f = find_field(path);
      if (!f)
        throw Error(where(source, kv->first.Mark()) + ": unknown key '" + path + "' — did you mean '" +
                    nearest(path, config_keys()) + "'?");
      set_value(cfg, *f, kv->second, where(source, kv->second.Mark()));
    }
  }
}

std::string file_stem(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

// model.arch gpt2: the named size's shape, n_ctx's default, and the keys that only one of the
// architectures reads (set for the other, they would be silently ignored: an error instead).
void resolve_gpt2(Config& c) {
  auto& m = c.model;
  auto given = [&](const char* k) { return std::find(c.given.begin(), c.given.end(), k) != c.given.end(); };
  auto bad = [&](const std::string& what, const std::string& hint) { throw Error(c.source + ": " + what, hint); };
  // Only non-default values count: a dumped config (checkpoint meta.json) lists every key.
  if (m.arch != "gpt2") {
    if (!m.size.empty() || m.n_ctx != 0 || m.dropout != 0.0)
      bad("model.size / model.n_ctx / model.dropout apply to model.arch: gpt2 (this is " + m.arch + ")",
          "remove them, or set model.arch: gpt2");
    return;
  }
  const ModelConfig d;
  if (m.n_kv_head != d.n_kv_head || m.softcap != d.softcap || m.rope_base != d.rope_base || m.norm_eps != d.norm_eps)
    bad("model.n_kv_head / model.softcap / model.rope_base / model.norm_eps do not exist in GPT-2 (model.arch: gpt2)",
        "remove them from the config");
  if (!m.size.empty()) {
    struct Named { const char* name; int64_t depth, width, heads; };
    static const Named sizes[] = {{"gpt2", 12, 768, 12}, {"gpt2-medium", 24, 1024, 16},
                                  {"gpt2-large", 36, 1280, 20}, {"gpt2-xl", 48, 1600, 25}};
    for (const auto& n : sizes) {
      if (m.size != n.name) continue;
      const int64_t want[] = {n.depth, n.width, n.heads};
      int64_t* have[] = {&m.depth, &m.width, &m.n_head};
      const char* keys[] = {"model.depth", "model.width", "model.n_head"};
      for (int i = 0; i < 3; ++i) {
        if (given(keys[i]) && *have[i] != want[i])
          bad(std::string(keys[i]) + " = " + std::to_string(*have[i]) + " contradicts model.size: " + m.size + " (" +
                  std::to_string(want[i]) + ")",
              std::string("remove ") + keys[i] + " or model.size");
        *have[i] = want[i];
      }
    }
  }
  // GPT-2 trains with AdamW alone (nanoGPT's betas 0.9/0.95, eps 1e-8, decay 0.1 on 2-D weights).
  auto& o = c.optim;
  if (!given("optim.recipe")) o.recipe = "adamw";
  if (o.recipe != "adamw")
    bad("optim.recipe = " + o.recipe + ": model.arch gpt2 trains with optim.recipe adamw",
        "remove optim.recipe (gpt2 defaults to adamw) or set it to adamw");
  if (!given("optim.adam_beta1")) o.adam_beta1 = 0.9;
  if (!given("optim.adam_eps")) o.adam_eps = 1e-8;
  if (!given("optim.weight_decay")) o.weight_decay = 0.1;
  if (m.n_ctx == 0) m.n_ctx = 1024;
  if (!given("model.seq_len")) m.seq_len = std::min<int64_t>(m.seq_len, m.n_ctx);
  if (m.seq_len > m.n_ctx)
    bad("model.seq_len = " + std::to_string(m.seq_len) + " exceeds model.n_ctx = " + std::to_string(m.n_ctx) +
            " (GPT-2's learned positions)",
        "lower model.seq_len or raise model.n_ctx (a model imported from Hugging Face has its n_positions)");
}

// optim.recipe muon_adamw: nanochat's current base_train.py defaults for every key the config
// leaves out (issue 22). The -1 scales are resolved at start (train/scaling.h) and saved resolved.
void resolve_muon_adamw(Config& c) {
  auto& o = c.optim;
  if (o.recipe != "muon_adamw") return;
  auto given = [&](const char* k) { return std::find(c.given.begin(), c.given.end(), k) != c.given.end(); };
  auto dflt = [&](const char* k, auto& field, auto value) {
    if (!given(k)) field = value;
  };
  dflt("optim.embedding_lr", o.embedding_lr, 0.3);
  dflt("optim.unembedding_lr", o.unembedding_lr, 0.008);
  dflt("optim.matrix_lr", o.matrix_lr, 0.02);
  dflt("optim.weight_decay", o.weight_decay, 0.28);
  dflt("optim.warmup_steps", o.warmup_steps, int64_t(40));
  dflt("optim.warmdown_ratio", o.warmdown_ratio, 0.65);
  dflt("optim.final_lr_frac", o.final_lr_frac, 0.05);
  dflt("optim.muon_momentum_start", o.muon_momentum_start, 0.85);
  dflt("optim.muon_momentum_end", o.muon_momentum_end, 0.97);
  dflt("optim.muon_momentum_warmup", o.muon_momentum_warmup, int64_t(400));
  dflt("optim.muon_momentum_final", o.muon_momentum_final, 0.90);
  dflt("optim.weight_decay_schedule", o.weight_decay_schedule, std::string("cosine"));
  dflt("optim.batch_lr_scale", o.batch_lr_scale, -1.0);
  dflt("optim.weight_decay_scale", o.weight_decay_scale, -1.0);
}

// model.arch nanochat2: RoPE base 100K unless given, and a window pattern of S and L only; the
// window keys are an error on the other architectures (they would be silently ignored).
void resolve_nanochat2(Config& c) {
  auto& m = c.model;
  auto given = [&](const char* k) { return std::find(c.given.begin(), c.given.end(), k) != c.given.end(); };
  const ModelConfig d;
  if (m.arch != "nanochat2") {
    if (m.window_pattern != d.window_pattern || m.short_window != d.short_window)
      throw Error(c.source + ": model.window_pattern / model.short_window apply to model.arch: nanochat2 (this is " +
                      m.arch + ")",
                  "remove them, or set model.arch: nanochat2");
    return;
  }
  if (!given("model.rope_base")) m.rope_base = 100000.0;
  if (m.window_pattern.empty() || m.window_pattern.find_first_not_of("SLsl") != std::string::npos)
    throw Error(c.source + ": model.window_pattern = \"" + m.window_pattern + "\" is not a pattern of S and L",
                "use e.g. SSSL (three short-window layers, then one full), or L for full attention everywhere");
  for (auto& ch : m.window_pattern) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
}

// Fill defaults that depend on other keys, then check what a single key's range cannot.
void resolve_and_validate(Config& c) {
  const std::string& src = c.source;
  if (c.run.name.empty()) c.run.name = file_stem(src);
  if (c.run.name.empty()) c.run.name = "run";
  if (c.run.dir.empty()) c.run.dir = "runs/" + c.run.name;
  if (c.checkpoint.dir.empty()) c.checkpoint.dir = c.run.dir + "/ckpt";
  resolve_gpt2(c);
  resolve_muon_adamw(c);
  resolve_nanochat2(c);
  if (c.train.fp8 && c.model.arch != "nanochat")  // model::GPT holds the FP8 hook (model/fp8.h)
    throw Error(src + ": train.fp8 = true applies to model.arch: nanochat (this is " + c.model.arch + ")",
                "remove train.fp8, or set it to false");
  derive_shape(c.model);  // throws on inconsistent explicit sizes
  auto bad = [&](const std::string& what) { throw Error(src + ": " + what); };
  if (c.train.total_batch_size == 0 || c.train.total_batch_size < -1)
    bad("train.total_batch_size = " + std::to_string(c.train.total_batch_size) +
        ": give tokens per step, or -1 (auto: nanochat's D^0.383 rule, resolved at start)");
  if (c.train.total_batch_size > 0 && c.train.total_batch_size % (c.train.device_batch_size * c.model.seq_len) != 0)
    bad("train.total_batch_size = " + std::to_string(c.train.total_batch_size) +
        " is not a multiple of train.device_batch_size * model.seq_len = " +
        std::to_string(c.train.device_batch_size) + " * " + std::to_string(c.model.seq_len) + " = " +
        std::to_string(c.train.device_batch_size * c.model.seq_len) +
        " tokens per micro-step; make it a multiple (times the number of ranks)");
  if (c.eval.core_every > 0 && c.eval.core_bundle.empty())
    throw Error(src + ": eval.core_every = " + std::to_string(c.eval.core_every) + " but eval.core_bundle is not set",
                "set eval.core_bundle to the CORE eval bundle (data_tools/fetch.sh core data/eval_bundle fetches it), "
                "or eval.core_every=0");
  if (c.eval.core_max_per_task == 0)
    bad("eval.core_max_per_task = 0 would evaluate no items; use -1 for all, or N > 0");
  if (c.optim.warmup_ratio + c.optim.warmdown_ratio > 1.0)
    bad("optim.warmup_ratio + optim.warmdown_ratio = " +
        format_double(c.optim.warmup_ratio + c.optim.warmdown_ratio) + " exceeds 1");
}

}  // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& f : fields()) out.push_back(f.path);
  return out;
}

ModelShape derive_shape(const ModelConfig& m) {
  ModelShape s;
  s.n_layer = m.depth;
  std::ostringstream rule;
  if (m.width > 0) {
    s.width = m.width;
    rule << "width = " << s.width << " (given)";
  } else {
    s.width = 64 * m.depth;
    rule << "width = 64*depth = " << s.width;
  }
  if (m.n_head > 0) {
    s.n_head = m.n_head;
    rule << "; heads = " << s.n_head << " (given)";
  } else if (m.arch == "gpt2") {
    s.n_head = std::max<int64_t>(1, s.width / 64);
    rule << "; heads = " << s.width << "/64 = " << s.n_head;
  } else {
    s.n_head = std::max<int64_t>(1, (s.width + 127) / 128);
    rule << "; heads = ceil(" << s.width << "/128) = " << s.n_head;
  }
  if (s.width % s.n_head != 0)
    throw Error("model.width = " + std::to_string(s.width) + " is not divisible by model.n_head = " +
                std::to_string(s.n_head) + "; choose a width that the heads divide");
  s.head_dim = s.width / s.n_head;
  if (s.head_dim % 2 != 0 && m.arch != "gpt2")  // rotary embeddings rotate pairs of channels
    throw Error("model.width / model.n_head = " + std::to_string(s.width) + " / " + std::to_string(s.n_head) +
                    " gives head_dim " + std::to_string(s.head_dim) + ", which is odd",
                "rotary embeddings need an even head_dim: change model.width or model.n_head (e.g. width = 64*depth)");
  s.n_kv_head = m.n_kv_head > 0 ? m.n_kv_head : s.n_head;
  if (s.n_head % s.n_kv_head != 0)
    throw Error("model.n_kv_head = " + std::to_string(s.n_kv_head) + " does not divide model.n_head = " +
                std::to_string(s.n_head));
  rule << "; head_dim = " << s.head_dim << "; kv_heads = " << s.n_kv_head;
  s.rule = rule.str();
  return s;
}

void apply_overrides(Config& cfg, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    const std::string at = cfg.source + " (override '" + o + "')";
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(at + ": an override must look like section.key=value, e.g. train.max_steps=100");
    const std::string path = o.substr(0, eq);
    const Field* f = find_field(path);
    if (!f)
      throw Error(at + ": unknown key '" + path + "' — did you mean '" + nearest(path, config_keys()) + "'?");
    // The value is taken as the text the user typed and parsed by the key's type, exactly as a
    // scalar in the file would be; an empty value clears a string key.
    const std::string value = o.substr(eq + 1);
    YAML::Node node = value.empty() ? YAML::Node(YAML::NodeType::Null) : YAML::Node(value);
    if (std::holds_alternative<DataSources*>(f->ref(cfg)) && value.starts_with("[")) {
      try {
        node = YAML::Load(value);  // data.train=[{path: a, repeat: 2}, b]
      } catch (const YAML::ParserException& e) {
        throw Error(at + ": invalid YAML list: " + e.msg);
      }
    }
    set_value(cfg, *f, node, at);
  }
}

Config load_config_text(const std::string& yaml, const std::string& source,
                        const std::vector<std::string>& overrides) {
  Config cfg;
  cfg.source = source;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw Error(where(source, e.mark) + ": invalid YAML: " + e.msg);
  }
  try {
    apply_yaml(cfg, root, source);
  } catch (const YAML::Exception& e) {  // e.g. a key that is a list, not a name
    throw Error(where(source, e.mark) + ": " + e.msg, "sections and keys are plain names (see --help-config)");
  }
  apply_overrides(cfg, overrides);
  resolve_and_validate(cfg);
  return cfg;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error("config file not found: " + path,
                "give the path of a YAML config, e.g. configs/tiny.yaml (see configs/)");
  if (std::filesystem::is_directory(path, ec))
    throw Error("config path is a directory, not a YAML file: " + path);
  std::ifstream in(path);
  if (!in) throw Error("cannot read config file: " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return load_config_text(ss.str(), path, overrides);
}

void validate_for_world(const Config& c, int world) {
  const int64_t per_step = c.train.device_batch_size * c.model.seq_len * world;
  if (c.train.total_batch_size == -1) return;  // auto: train/scaling.h resolves and checks it
  if (c.train.total_batch_size % per_step != 0)
    throw Error(c.source + ": train.total_batch_size = " + std::to_string(c.train.total_batch_size) +
                    " is not divisible by world * train.device_batch_size * model.seq_len = " +
                    std::to_string(world) + " * " + std::to_string(c.train.device_batch_size) + " * " +
                    std::to_string(c.model.seq_len) + " = " + std::to_string(per_step),
                "change train.device_batch_size or train.total_batch_size so that the total is a "
                "multiple of the tokens all ranks process in one micro-step");
}

int64_t grad_accum_steps(const Config& c, int world) {
  validate_for_world(c, world);
  return c.train.total_batch_size / (c.train.device_batch_size * c.model.seq_len * world);
}

namespace {
// One source with repeat 1 is written as its path (the pretraining form); else a flow list.
void emit_sources(YAML::Emitter& out, const DataSources& s) {
  if (s.empty()) {
    out << YAML::DoubleQuoted << "";
  } else if (s.size() == 1 && s[0].repeat == 1) {
    out << YAML::DoubleQuoted << s[0].path;
  } else {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : s)
      out << YAML::BeginMap << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << x.path << YAML::Key
          << "repeat" << YAML::Value << x.repeat << YAML::EndMap;
    out << YAML::EndSeq;
  }
}
}  // namespace

std::string to_yaml(const Config& cfg_in) {
  Config cfg = cfg_in;  // Field::ref needs a mutable Config; nothing is written
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const auto& f : fields()) {
    const std::string sec = f.path.substr(0, f.path.find('.'));
    const std::string key = f.path.substr(f.path.find('.') + 1);
    if (sec != section) {
      if (!section.empty()) out << YAML::EndMap;
      out << YAML::Key << sec << YAML::Value << YAML::BeginMap;
      section = sec;
    }
    out << YAML::Key << key << YAML::Value;
    std::visit(
        [&](auto* p) {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, int64_t>) out << *p;
          else if constexpr (std::is_same_v<T, double>) out << format_double(*p);
          else if constexpr (std::is_same_v<T, bool>) out << (*p ? "true" : "false");
          else if constexpr (std::is_same_v<T, DataSources>) emit_sources(out, *p);
          else out << YAML::DoubleQuoted << *p;
        },
        f.ref(cfg));
  }
  if (!section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string describe_keys() {
  Config defaults;
  std::ostringstream os;
  for (const auto& f : fields()) {
    Ref r = f.ref(defaults);
    std::string def = std::visit(
        [](auto* p) -> std::string {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, int64_t>) return std::to_string(*p);
          else if constexpr (std::is_same_v<T, double>) return format_double(*p);
          else if constexpr (std::is_same_v<T, bool>) return *p ? "true" : "false";
          else if constexpr (std::is_same_v<T, DataSources>) return p->empty() ? "\"\"" : "\"" + p->front().path + "\"";
          else return "\"" + *p + "\"";
        },
        r);
    std::string type = type_name(r).substr(type_name(r).find(' ') + 1);
    os << "  " << f.path << " (" << type << ", default " << def << "): " << f.help << "\n";
  }
  return os.str();
}

std::string describe_sources(const DataSources& s) {
  std::string out;
  for (const auto& d : s) {
    if (!out.empty()) out += ", ";
    out += d.path;
    if (d.repeat != 1) out += " x" + std::to_string(d.repeat);
  }
  return out;
}

}  // namespace kiln
