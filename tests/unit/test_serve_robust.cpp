// serve (issue 19): what the attacks of tests/e2e/serve_attack.sh reach inside the server, tested
// at their own layer: a body nested deep in any field is a 400 before it is parsed (no recursion
// on it); temperature 1e-40 and top_p 1e-300 sample the argmax instead of NaN or an empty set; a
// row whose sampling fails ends its own request with an error and the rows batched with it finish
// as they would alone, and the client hears a fixed message, not the engine's text.
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "engine/generator.h"
#include "engine/sampler.h"
#include "model/gpt.h"
#include "serve/request.h"
#include "serve/scheduler.h"
#include "serve/sse_stream.h"
#include "serve_test_util.h"
#include "tokenizer/tokenizer.h"

namespace {

using kiln::serve::test::bytes_tok;
using kiln::serve::test::limits;

// {"status", "code"} of a body at an endpoint (0 when accepted).
std::pair<int, std::string> refusal(bool chat, const std::string& body) {
  try {
    chat ? kiln::serve::parse_chat_request(body, bytes_tok(), limits())
         : kiln::serve::parse_completion_request(body, bytes_tok(), limits());
  } catch (const kiln::serve::ApiError& e) {
    return {e.status, e.code};
  }
  return {0, ""};
}

std::string nest(size_t n, const std::string& inner = "1") { return std::string(n, '[') + inner + std::string(n, ']'); }

std::string nest_objects(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += R"({"a":)";
  return s + "1" + std::string(n, '}');
}

TEST(ServeRequest, DeepNestingIsA400InEveryField) {
  const std::string msg = R"([{"role":"user","content":"hi"}])";
  const std::vector<std::pair<bool, std::string>> cases = {
      {false, R"({"prompt":)" + nest(200000) + "}"},
      {false, R"({"prompt":"a","stop":)" + nest(1000000) + "}"},
      {false, R"({"prompt":"a","max_tokens":)" + nest(100000) + "}"},
      {false, R"({"prompt":"a","unknown":)" + nest_objects(300000) + "}"},
      {true, R"({"messages":)" + nest(500000) + "}"},
      {true, R"({"messages":[{"role":"user","content":)" + nest(500000) + "}]}"},
      {true, R"({"messages":[{"role":)" + nest(500000) + R"(,"content":"x"}]})"},
      {true, R"({"messages":)" + msg + R"(,"stream_options":)" + nest(500000) + "}"},
      {true, R"({"messages":)" + msg + R"(,"seed":)" + nest(500000) + "}"},
  };
  for (const auto& [chat, body] : cases) {
    const auto [status, code] = refusal(chat, body);
    EXPECT_EQ(status, 400) << body.substr(0, 80);
    EXPECT_EQ(code, "invalid_json") << body.substr(0, 80);
  }
  // The limit itself: 32 levels pass the depth check (and are then a wrong type); 33 do not.
  EXPECT_EQ(refusal(false, R"({"prompt":)" + nest(31) + "}").second, "invalid_type");
  EXPECT_EQ(refusal(false, R"({"prompt":)" + nest(32) + "}").second, "invalid_json");
  // Brackets inside strings (with escaped quotes) are text.
  EXPECT_EQ(refusal(false, R"({"prompt":"\")" + std::string(40, '[') + R"(","max_tokens":2})").first, 0);
}

TEST(ServeSampling, TinyTemperatureAndTopPSampleTheArgmax) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto logits = torch::randn({300}, g) * 5;
  const int64_t argmax = logits.argmax().item<int64_t>();
  for (double t : {1e-40, 5e-324, 1e-7}) {
    kiln::engine::SamplingOptions o;
    o.temperature = t;
    EXPECT_EQ(kiln::engine::sample_next(logits, o, g), argmax) << "temperature " << t;
  }
  for (double p : {1e-300, 5e-324, 1e-45}) {
    for (double t : {0.5, 2.0}) {
      kiln::engine::SamplingOptions o;
      o.temperature = t, o.top_p = p;
      for (int i = 0; i < 20; ++i) EXPECT_EQ(kiln::engine::sample_next(logits, o, g), argmax) << "top_p " << p;
    }
  }
}

// A byte-level model with random weights (as tests/unit/test_engine_cache.cpp).
std::shared_ptr<kiln::model::LM> tiny_model(const kiln::tok::Tokenizer& tok) {
  kiln::ModelConfig m;
  m.depth = 1, m.width = 32, m.n_head = 2, m.n_kv_head = 2, m.seq_len = 16;
  kiln::model::GPT model(kiln::model::GPTConfig::from(m, tok.vocab_size()));
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  for (auto& p : model->parameters()) p.normal_(0.0, 1.0 / std::sqrt(double(p.size(-1))), gen);
  return model.ptr();
}

// Runs jobs through a Scheduler; per job, its text (choice 0) or "ERROR: ..." .
std::vector<std::string> serve(const std::vector<kiln::serve::Job>& jobs) {
  auto tok = std::make_shared<const kiln::tok::Tokenizer>(kiln::tok::Tokenizer::from_merges({}));
  kiln::serve::Scheduler sched(kiln::engine::Generator(tiny_model(*tok), tok, 4), tok, 4, 8);
  std::vector<std::shared_ptr<kiln::serve::Channel>> chans;
  for (const auto& j : jobs) chans.push_back(sched.submit(j));
  std::vector<std::string> out(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    int64_t done = 0;
    for (int k = 0; k < 600 && done < jobs[i].n; ++k)
      for (auto& d : chans[i]->pop(std::chrono::milliseconds(50))) {
        if (!d.error.empty()) {
          out[i] = "ERROR: " + d.error;
          done = jobs[i].n;
          break;
        }
        if (d.choice == 0) out[i] += d.text;
        done += d.done;
      }
    EXPECT_EQ(done, jobs[i].n) << "job " << i << " did not finish";
  }
  return out;
}

TEST(ServeScheduler, ASamplingFailureFailsOnlyItsRequest) {
  at::set_num_threads(1);
  auto job = [](double temperature, uint64_t seed, int64_t n = 1) {
    kiln::serve::Job j;
    j.prompts = {{bytes_tok().bos_id(), 'a', 'b'}};
    j.n = n;
    j.options.temperature = temperature;
    j.options.max_new_tokens = 12;
    j.options.seed = seed;
    j.options.stop_tokens = {-1};  // no stop: every row runs 12 tokens
    return j;
  };
  // A NaN temperature makes the row's sampling throw (NaN probabilities): the engine's own check,
  // not reachable through the request parser, which is why it stands in for any sampling failure.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto alone = serve({job(0.9, 1), job(0.9, 2, 2)});
  const auto mixed = serve({job(0.9, 1), job(nan, 3, 2), job(0.9, 2, 2)});
  EXPECT_EQ(mixed[0], alone[0]);
  EXPECT_EQ(mixed[2], alone[1]);
  EXPECT_EQ(mixed[1].rfind("ERROR: ", 0), 0u) << mixed[1];
  EXPECT_FALSE(alone[0].empty());
}

}  // namespace

// What a streamed reply says when generation failed: the fixed message, never the engine's text
// (a PyTorch error with its stack frames); the request is cancelled so that its other rows leave.
TEST(ServeSseStream, AFailureSendsTheFixedMessageOnly) {
  auto ch = std::make_shared<kiln::serve::Channel>();
  kiln::serve::SseStream sse(ch, {true, "chatcmpl-1", 1, "m"}, 2, 5, false);
  ch->push({0, "Hel", false, "", 1, ""});
  ch->push({1, "", true, "", 1, "c10::Error: probability tensor contains inf\nException raised from multinomial at "
                                "aten/src/ATen/native/Distributions.cpp:598"});
  std::string out;
  bool done = false;
  httplib::DataSink sink;
  sink.write = [&](const char* d, size_t n) { return out.append(d, n), true; };
  sink.done = [&] { done = true; };
  EXPECT_TRUE(sse.write(sink));
  EXPECT_TRUE(done);
  EXPECT_NE(out.find(kiln::serve::kGenerationFailed), std::string::npos) << out;
  EXPECT_NE(out.find("Hel"), std::string::npos) << out;
  for (const char* internal : {"c10", "multinomial", "aten/", "Exception", "probability"})
    EXPECT_EQ(out.find(internal), std::string::npos) << internal << " reached the client: " << out;
  EXPECT_NE(out.find("data: [DONE]"), std::string::npos);
  EXPECT_TRUE(ch->cancelled());
}
