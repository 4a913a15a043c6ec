// See rl_source.h. RlLoader is the batch source; its stats, lanes and pass@k reach the Trainer
// through StageHooks, so ./rl has no training loop of its own.
#include "train/rl_source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/format.h"       // f9
#include "core/log.h"
#include "dist/dist.h"         // all_reduce_sum, all_gather
#include "engine/generator.h"  // Generator
#include "engine/sampler.h"    // draw_seed
#include "eval/runner.h"       // run_generative, EvalModel, EvalOptions
#include "eval/tasks.h"        // score_gsm8k, task_spec
#include "model/autocast.h"    // AutocastGuard, use_autocast
#include "tokenizer/chat.h"    // render_for_completion

namespace kiln::train {

RlSample make_rl_sample(const std::vector<int64_t>& prompt, const std::vector<int64_t>& gen_ids,
                        const std::vector<uint8_t>& gen_mask, double reward) {
  RlSample out;
  out.ids = prompt;
  out.ids.insert(out.ids.end(), gen_ids.begin(), gen_ids.end());
  out.mask.assign(prompt.size(), 0);
  out.mask.insert(out.mask.end(), gen_mask.begin(), gen_mask.end());
  out.reward = reward;
  return out;
}

data::Batch rl_micro_batch(const std::vector<RlSample>& group, size_t begin, size_t end, int64_t passes,
                           int64_t examples_per_step, int64_t pad_id, torch::Device device) {
  size_t len = 0;
  double mean = 0;
  for (const auto& s : group) len = std::max(len, s.ids.size()), mean += s.reward;
  mean /= double(group.size());
  const int64_t B = int64_t(end - begin), L = int64_t(len);
  torch::Tensor ids = torch::full({B, L}, pad_id, torch::kInt64), mask = torch::zeros({B, L}, torch::kBool);
  torch::Tensor adv = torch::empty({B, 1}, torch::kFloat64);
  for (int64_t b = 0; b < B; ++b) {
    const RlSample& s = group[begin + b];
    const int64_t n = int64_t(s.ids.size());
    ids[b].narrow(0, 0, n).copy_(torch::tensor(s.ids, torch::kInt64));
    mask[b].narrow(0, 0, n).copy_(torch::tensor(std::vector<int64_t>(s.mask.begin(), s.mask.end())).to(torch::kBool));
    adv[b][0] = s.reward - mean;  // r - mean(r): no std division
  }
  data::Batch out;
  out.inputs = ids.narrow(1, 0, L - 1).contiguous();
  out.targets = ids.narrow(1, 1, L - 1).clone();
  const torch::Tensor trained = mask.narrow(1, 1, L - 1);  // prompt and tool output are not
  out.targets.masked_fill_(trained.logical_not(), -1);
  const double valid = std::max<int64_t>(1, trained.sum().item<int64_t>());
  // Token-level normalisation: every valid token of the pass counts once, whatever its row.
  out.weights = (adv * trained.to(torch::kFloat64) / (valid * double(passes) * double(examples_per_step)))
                    .to(torch::kFloat32);
  out.inputs = out.inputs.to(device);
  out.targets = out.targets.to(device);
  out.weights = out.weights.to(device);
  return out;
}

void resolve_rl_batch(Config& cfg) {
  const auto& r = cfg.rl;
  const int64_t B = cfg.train.device_batch_size;
  if (r.num_samples % B != 0)
    throw Error(cfg.source + ": rl.num_samples = " + std::to_string(r.num_samples) +
                    " is not a multiple of train.device_batch_size = " + std::to_string(B),
                "each question's samples are trained in passes of train.device_batch_size rows; make it divide");
  const int64_t total = r.examples_per_step * r.num_samples * cfg.model.seq_len;
  const bool given = std::find(cfg.given.begin(), cfg.given.end(), "train.total_batch_size") != cfg.given.end();
  if (given && cfg.train.total_batch_size != total)
    throw Error(cfg.source + ": train.total_batch_size = " + std::to_string(cfg.train.total_batch_size) +
                    " but ./rl derives it: rl.examples_per_step x rl.num_samples x model.seq_len = " +
                    std::to_string(total),
                "remove train.total_batch_size; set rl.examples_per_step and rl.num_samples instead");
  cfg.train.total_batch_size = total;
}

namespace {

// A question's sampled ids as 48 bits (exact in a double and in JSON): the step records carry
// one per lane so that tests see which samples each lane drew.
int64_t fnv48(const std::vector<RlSample>& group, size_t prompt_len) {
  uint64_t h = 1469598103934665603ULL;
  for (const auto& s : group) {
    for (size_t i = prompt_len; i < s.ids.size(); ++i) h = (h ^ uint64_t(s.ids[i])) * 1099511628211ULL;
    h = (h ^ 0xFFFFULL) * 1099511628211ULL;  // row separator
  }
  return int64_t(h >> 16);
}

std::vector<data::TaskExample> read_questions(const Config& cfg, const std::string& key, const std::string& path,
                                              int64_t* skipped) {
  if (path.empty())
    throw Error(cfg.source + ": " + key + " is not set", "point it at a GSM8K JSONL file (data_tools/fetch.sh gsm8k)");
  std::vector<data::TaskExample> out;
  try {
    out = data::read_gsm8k(path, skipped);
  } catch (const Error& e) {
    throw Error(cfg.source + ": " + key + " = \"" + path + "\": " + e.what());
  }
  if (*skipped > 0)
    log::warn("[rl] %s: %lld row(s) without a parsable '#### <number>' answer skipped (%zu kept)", path.c_str(),
              (long long)*skipped, out.size());
  if (out.empty())
    throw Error(cfg.source + ": " + key + " = \"" + path + "\" holds no question with a parsable answer",
                "GSM8K rows are {\"question\", \"answer\"} with a '#### <number>' line in the answer");
  return out;
}

// Questions whose prompt leaves the model no position to answer in are counted and left out
// (the engine refuses them; a tiny model's context is shorter than some GSM8K questions).
void drop_too_long(std::vector<data::TaskExample>& exs, const tok::Tokenizer& tok, int64_t positions,
                   const std::string& path, int64_t* skipped) {
  const size_t before = exs.size();
  std::erase_if(exs, [&](const data::TaskExample& ex) {
    return int64_t(tok::render_for_completion(tok, ex.conv).size()) + 1 > positions;
  });
  if (exs.size() == before) return;
  *skipped += int64_t(before - exs.size());
  log::warn("[rl] %s: %zu question(s) longer than the model's %lld positions skipped", path.c_str(), before - exs.size(),
            (long long)positions);
}

class RlLoader : public data::Loader {
 public:
  RlLoader(const Config& cfg, std::vector<data::TaskExample> train, model::Model model,
           std::shared_ptr<const tok::Tokenizer> tok, torch::Device device, int rank, int world)
      : cfg_(cfg), train_(std::move(train)), model_(std::move(model)), tok_(std::move(tok)), device_(device),
        rank_(rank), world_(world) {
    const auto& r = cfg.rl;
    P_ = r.examples_per_step;
    S_ = r.num_samples;
    B_ = cfg.train.device_batch_size;
    if (P_ % world != 0)
      throw Error(cfg.source + ": rl.examples_per_step = " + std::to_string(P_) + " is not a multiple of the " +
                      std::to_string(world) + " ranks",
                  "questions are strided over ranks; use a multiple of the rank count");
    E_ = P_ / world;
    passes_ = S_ / B_;
    pad_ = tok_->special_id("<|assistant_end|>");  // padding only: never a target
    for (int64_t lane = rank; lane < P_; lane += world) {
      lanes_.emplace(lane, at::make_generator<at::CPUGeneratorImpl>(lane_seed(lane)));
    }
    autocast_ = model::use_autocast(cfg.train.dtype, device);
  }

  data::Batch next() override {
    const int64_t per_step = E_ * passes_;
    const int64_t step = batches_ / per_step, within = batches_ % per_step;
    const int64_t j = within / passes_, pass = within % passes_;
    if (pass == 0 || group_key_ != batches_ - pass) {
      sample_group(step, j);
      group_key_ = batches_ - pass;
    }
    ++batches_;
    return rl_micro_batch(group_, size_t(pass * B_), size_t((pass + 1) * B_), passes_, P_, pad_, device_);
  }

  data::Cursor cursor() const override {
    data::Cursor c;
    c.batches = batches_;
    const int64_t pos = batches_ / (E_ * passes_) * P_;  // global questions taken
    c.epoch = pos / int64_t(train_.size());
    c.position = pos % int64_t(train_.size());
    return c;
  }

  void restore(const data::Cursor& c) override {
    batches_ = c.batches;
    group_key_ = -1;
  }

  // Collective: the step's samples over all ranks, then reset.
  nlohmann::ordered_json step_record() {
    const double n = dist::all_reduce_sum(double(samples_));
    const double rewards = dist::all_reduce_sum(reward_sum_), tokens = dist::all_reduce_sum(double(gen_tokens_));
    const double tools = dist::all_reduce_sum(double(tool_samples_));
    nlohmann::ordered_json rec;
    rec["reward"] = std::stod(f9(n > 0 ? rewards / n : 0.0));
    rec["sample_len"] = std::stod(f9(n > 0 ? tokens / n : 0.0));
    rec["tool_rate"] = std::stod(f9(n > 0 ? tools / n : 0.0));
    std::vector<int64_t> questions(P_, -1), hashes(P_, 0);
    for (int64_t j = 0; j < E_; ++j) {
      const auto q = dist::all_gather(j < int64_t(step_questions_.size()) ? step_questions_[j] : -1);
      const auto h = dist::all_gather(j < int64_t(step_hashes_.size()) ? step_hashes_[j] : 0);
      for (int r = 0; r < world_; ++r) questions[j * world_ + r] = q[r], hashes[j * world_ + r] = h[r];
    }
    rec["questions"] = questions;
    rec["sample_hash"] = hashes;
    samples_ = gen_tokens_ = tool_samples_ = 0;
    reward_sum_ = 0;
    step_questions_.clear();
    step_hashes_.clear();
    return rec;
  }

  model::NamedTensors lane_states() const {
    model::NamedTensors out;
    for (const auto& [lane, gen] : lanes_) out.emplace_back(lane_key(lane), gen.get_state());
    return out;
  }

  void restore_lanes(const std::map<std::string, torch::Tensor>& state) {
    for (auto& [lane, gen] : lanes_) {
      auto it = state.find(lane_key(lane));
      if (it == state.end())
        throw Error("[rl] the checkpoint holds no sampling state for question lane " + std::to_string(lane) + " (" +
                        lane_key(lane) + ")",
                    "resume it with the rl.examples_per_step it was saved with (the config in its meta.json)");
      gen.set_state(it->second);
    }
  }

 private:
  uint64_t lane_seed(int64_t lane) const {
    return uint64_t(cfg_.run.seed) * 1000003ULL + 0x524C00000000ULL + uint64_t(lane);
  }
  static std::string lane_key(int64_t lane) {
    char buf[40];
    snprintf(buf, sizeof(buf), "stage.rl.lane_%06lld", (long long)lane);
    return buf;
  }

  // Samples, rewards and stats of local question j of `step` (lane j*W + rank).
  void sample_group(int64_t step, int64_t j) {
    const int64_t lane = j * world_ + rank_;
    const int64_t pos = step * P_ + lane;
    const data::TaskExample& ex = train_[size_t(pos % int64_t(train_.size()))];
    const auto prompt32 = tok::render_for_completion(*tok_, ex.conv);
    const std::vector<int64_t> prompt(prompt32.begin(), prompt32.end());
    torch::Generator& gen = lanes_.at(lane);
    std::vector<engine::SamplingOptions> opts(static_cast<size_t>(S_));
    for (auto& o : opts) {
      o.max_new_tokens = cfg_.rl.max_new_tokens;
      o.temperature = cfg_.rl.temperature;
      o.top_k = cfg_.rl.top_k;
      o.tools = true;  // the calculator is live, as in chat_rl.py's Engine
      o.seed = engine::draw_seed(gen);
    }
    std::vector<engine::GenResult> res;
    {
      torch::NoGradGuard no_grad;
      model::AutocastGuard ag(device_, autocast_);
      const bool was_training = model_->is_training();
      model_->eval();
      res = engine::Generator(model_, tok_).generate(std::vector<std::vector<int64_t>>(size_t(S_), prompt), opts);
      model_->train(was_training);
    }
    group_.clear();
    for (int64_t s = 0; s < S_; ++s) {
      const auto& r = res[size_t(s)];
      if (r.finish == engine::Finish::Failed) throw Error("[rl] sampling failed: " + r.error);
      const std::string text = tok_->decode(std::vector<uint32_t>(r.ids.begin(), r.ids.end()));
      group_.push_back(make_rl_sample(prompt, r.ids, r.mask, reward(text, ex)));
      reward_sum_ += group_.back().reward;
      gen_tokens_ += int64_t(r.ids.size());
      tool_samples_ += std::find(r.mask.begin(), r.mask.end(), 0) != r.mask.end();  // forced output: a call
      ++samples_;
    }
    step_questions_.push_back(pos % int64_t(train_.size()));
    dump(step, lane, step_questions_.back());
    step_hashes_.push_back(fnv48(group_, prompt.size()));
  }

  // Test hook (tests/reference/rl_step_ref.py): KILN_RL_DUMP=FILE appends each question's samples
  // as one JSON line to FILE.<rank>. Unset (always, outside that test) it costs one getenv.
  void dump(int64_t step, int64_t lane, int64_t question) const {
    const char* path = std::getenv("KILN_RL_DUMP");
    if (!path || !*path) return;
    nlohmann::json rec = {{"step", step}, {"lane", lane}, {"question", question}, {"samples", nlohmann::json::array()}};
    for (const auto& s : group_)
      rec["samples"].push_back({{"ids", s.ids}, {"mask", s.mask}, {"reward", s.reward}});
    std::ofstream(std::string(path) + "." + std::to_string(rank_), std::ios::app) << rec.dump() << "\n";
  }

  double reward(const std::string& completion, const data::TaskExample& ex) const {
    if (cfg_.rl.reward == "format") return data::gsm8k_extract_answer(completion).has_value() ? 1.0 : 0.0;
    return eval::score_gsm8k(completion, ex) ? 1.0 : 0.0;  // ./eval's rule
  }

  Config cfg_;
  std::vector<data::TaskExample> train_;
  model::Model model_;
  std::shared_ptr<const tok::Tokenizer> tok_;
  torch::Device device_;
  int rank_, world_;
  bool autocast_ = false;
  int64_t P_ = 0, S_ = 0, B_ = 0, E_ = 0, passes_ = 0, pad_ = 0;
  std::map<int64_t, torch::Generator> lanes_;  // this rank's lanes (Note [RL lanes])
  int64_t batches_ = 0;    // micro-batches this rank has taken
  int64_t group_key_ = -1; // batches_ at the group's first micro-batch
  std::vector<RlSample> group_;
  double reward_sum_ = 0;
  int64_t samples_ = 0, gen_tokens_ = 0, tool_samples_ = 0;
  std::vector<int64_t> step_questions_, step_hashes_;
};

}  // namespace

RlStage make_rl_stage(const Config& cfg, model::Model model, std::shared_ptr<const tok::Tokenizer> tok,
                      torch::Device device, int rank, int world) {
  for (const char* t : {"<|user_start|>", "<|assistant_start|>", "<|assistant_end|>"})
    if (!tok->find_special(t))
      throw Error(cfg.source + ": " + cfg.data.tokenizer + " has no chat token " + t + ": ./rl samples chat replies",
                  "start ./rl from a chat model (init.from an ./sft checkpoint) with its chat tokenizer");
  int64_t train_skipped = 0, val_skipped = 0;
  auto train = read_questions(cfg, "rl.train", cfg.rl.train, &train_skipped);
  std::vector<data::TaskExample> val;
  if (!cfg.rl.val.empty()) val = read_questions(cfg, "rl.val", cfg.rl.val, &val_skipped);
  drop_too_long(train, *tok, model->max_positions(), cfg.rl.train, &train_skipped);
  drop_too_long(val, *tok, model->max_positions(), cfg.rl.val, &val_skipped);
  if (train.empty())
    throw Error(cfg.source + ": no question of rl.train = \"" + cfg.rl.train + "\" fits the model's " +
                    std::to_string(model->max_positions()) + " positions",
                "raise model.seq_len (the context ./rl gives the model) or use shorter questions");
  log::info("[rl] %zu training questions (%lld skipped), %zu held-out (%lld skipped); %lld questions x %lld samples per step",
            train.size(), (long long)train_skipped, val.size(), (long long)val_skipped,
            (long long)cfg.rl.examples_per_step, (long long)cfg.rl.num_samples);
  RlStage st;
  if (cfg.train.epochs > 0)  // chat_rl.py: (len(train) // examples_per_step) * num_epochs
    st.epoch_steps = std::max<int64_t>(
        1, int64_t(double(int64_t(train.size()) / cfg.rl.examples_per_step) * cfg.train.epochs));
  auto loader = std::make_unique<RlLoader>(cfg, std::move(train), model, tok, device, rank, world);
  RlLoader* l = loader.get();
  st.hooks.step_record = [l] { return l->step_record(); };
  st.hooks.save_state = [l] { return l->lane_states(); };
  st.hooks.restore_state = [l](const std::map<std::string, torch::Tensor>& s) { l->restore_lanes(s); };
  if (!val.empty()) {
    auto held_out = std::make_shared<std::vector<data::TaskExample>>(std::move(val));
    if (int64_t(held_out->size()) > cfg.rl.eval_examples) held_out->resize(size_t(cfg.rl.eval_examples));
    st.hooks.evaluate = [cfg, model, tok, device, held_out, train_skipped, val_skipped](int64_t step) {
      eval::EvalModel em;
      em.m.cfg = cfg;
      em.m.model = model;
      em.m.tokenizer = tok;
      em.device = device;
      em.autocast = model::use_autocast(cfg.train.dtype, device);
      eval::EvalOptions o;
      o.num_samples = cfg.rl.eval_samples > 0 ? cfg.rl.eval_samples : cfg.train.device_batch_size;
      o.temperature = cfg.rl.temperature;  // chat_rl.py: pass@k at temperature 1.0
      o.top_k = cfg.rl.top_k;
      o.max_new_tokens = cfg.rl.max_new_tokens;
      o.batch_size = std::max<int64_t>(1, cfg.train.device_batch_size / o.num_samples);
      o.seed = uint64_t(cfg.run.seed);  // the same draws at every evaluation: changes are the model's
      const bool was_training = model->is_training();
      model->eval();
      const eval::TaskResult r = eval::run_generative(eval::task_spec("gsm8k"), *held_out, em, o);
      model->train(was_training);
      const double n = double(r.total), k = double(o.num_samples);
      const double pass1 = n > 0 ? r.extra.at("samples_passed").get<double>() / (n * k) : 0.0;
      log::info("[rl] step %lld | pass@1 %.4f | pass@%lld %.4f on %lld held-out questions", (long long)step, pass1,
                (long long)o.num_samples, r.score, (long long)r.total);
      return nlohmann::ordered_json{{"step", step},
                                    {"pass@1", std::stod(f9(pass1))},
                                    {"pass@k", std::stod(f9(r.score))},
                                    {"k", o.num_samples},
                                    {"eval_questions", r.total},
                                    {"train_rows_skipped", train_skipped},
                                    {"val_rows_skipped", val_skipped}};
    };
  }
  st.loader = std::move(loader);
  return st;
}

}  // namespace kiln::train
