// See stage_data.h. A source list (data.train: [{path, repeat}]) becomes shard lists: for
// pretraining the shards are streamed in the listed order (a repeat lists them again), as a token
// stream or best-fit rows (data.layout bestfit, the validation loader too, as nanochat); for chat
// stages each source's conversations join the shuffled rows `repeat` times.
#include "train/stage_data.h"

#include <filesystem>

#include "core/error.h"
#include "data/chat_loader.h"      // ChatLoader
#include "data/pretrain_loader.h"  // PretrainLoader, shard_stream
#include "data/shard.h"            // list_shards
#include "tokenizer/chat.h"        // render_for_completion

namespace kiln::train {
namespace {

// Shard paths for a data.* pattern, with the command that makes them when there are none.
std::vector<std::string> shards_or_hint(const Config& cfg, const std::string& key, const std::string& pattern,
                                        bool chat) {
  try {
    return data::list_shards(pattern);
  } catch (const Error& e) {
    // Shards that exist but are refused (an incomplete dataset) keep their own message.
    if (std::string(e.what()).rfind("[data] no shards match", 0) != 0)
      throw Error(cfg.source + ": " + key + " = \"" + pattern + "\": " + e.what());
    const std::string dir = std::filesystem::path(pattern).parent_path().string();
    throw Error(cfg.source + ": " + key + " = \"" + pattern + "\": no token shards there",
                "make them with ./prepare " + std::string(chat ? "--chat " : "") + "--tokenizer " +
                    cfg.data.tokenizer + " --output " + dir +
                    " INPUT... (./launch/demo.sh does it for the tiny configs)");
  }
}

std::unique_ptr<data::Loader> make_loader(Stage stage, const Config& cfg, const std::string& key,
                                          const DataSources& sources, const tok::Tokenizer& tok, int rank, int world,
                                          torch::Device device, int64_t* epoch_steps) {
  const int64_t B = cfg.train.device_batch_size, T = cfg.model.seq_len;
  if (stage == Stage::Pretrain) {
    std::vector<std::string> paths;
    for (const auto& s : sources) {
      const auto shards = shards_or_hint(cfg, key, s.path, false);
      for (int64_t r = 0; r < s.repeat; ++r) paths.insert(paths.end(), shards.begin(), shards.end());
    }
    auto loader = std::make_unique<data::PretrainLoader>(data::shard_stream(paths, tok.sha256(), tok.vocab_size()),
                                                         B, T, rank, world, device,
                                                         cfg.data.layout == "bestfit" ? data::Packing::BestFit
                                                                                      : data::Packing::Stream);
    if (epoch_steps && cfg.train.epochs > 0)
      *epoch_steps = std::max<int64_t>(
          1, int64_t(cfg.train.epochs * double(loader->stream_tokens()) / double(cfg.train.total_batch_size)));
    return loader;
  }
  std::vector<data::ChatSource> chat;
  for (const auto& s : sources) chat.push_back({shards_or_hint(cfg, key, s.path, true), s.repeat});
  auto loader = std::make_unique<data::ChatLoader>(chat, data::chat_loader_options(cfg, stage == Stage::Sft, tok, rank, world, device));
  if (epoch_steps && cfg.train.epochs > 0) {
    const int64_t accum = grad_accum_steps(cfg, world);
    *epoch_steps = loader->steps_for_epochs(cfg.train.epochs, B * world * accum, cfg.train.total_batch_size);
  }
  return loader;
}

}  // namespace

StageLoaders make_stage_loaders(Stage stage, const Config& cfg, const tok::Tokenizer& tok, int rank, int world,
                                torch::Device device) {
  if (stage == Stage::Pretrain && cfg.data.layout == "padded")
    throw Error(cfg.source + ": data.layout = padded: pretraining reads packed token windows",
                "remove data.layout (or set it to auto/packed/bestfit); padded rows are for ./sft");
  if (stage != Stage::Pretrain && cfg.data.layout == "bestfit")
    throw Error(cfg.source + ": data.layout = bestfit: best-fit packing is for pretraining's documents",
                "use data.layout packed or padded for chat stages");
  if (cfg.data.train.empty())
    throw Error(cfg.source + ": data.train is not set", "give the training shards (a glob or a list of {path, repeat})");
  StageLoaders out;
  out.train = make_loader(stage, cfg, "data.train", cfg.data.train, tok, rank, world, device, &out.epoch_steps);
  if (!cfg.data.val.empty())
    out.val = make_loader(stage, cfg, "data.val", cfg.data.val, tok, rank, world, device, nullptr);
  return out;
}

std::vector<std::vector<int64_t>> chat_sample_prompts(const tok::Tokenizer& tok) {
  std::vector<std::vector<int64_t>> out;
  for (const char* q : {"Who are you?", "What is 12 times 7?",
                        "Natalia sold 48 clips in April and half as many in May. How many clips did she sell?"}) {
    tok::Conversation c;
    c.messages.push_back({"user", std::string(q)});
    auto ids = tok::render_for_completion(tok, c);
    out.emplace_back(ids.begin(), ids.end());
  }
  return out;
}

}  // namespace kiln::train
