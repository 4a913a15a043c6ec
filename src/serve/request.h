// An OpenAI request body (POST /v1/chat/completions or /v1/completions) checked against the
// server's limits and turned into what the scheduler runs: the prompt's token ids, the sampling
// options, the stop strings. Every mistake is an ApiError with its HTTP status, in OpenAI's terms.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/sampling_options.h"

namespace kiln::tok {
class Tokenizer;
}

namespace kiln::serve {

// An error answered as {"error": {"message", "type", "param", "code"}} with HTTP `status`.
struct ApiError : std::runtime_error {
  int status;
  std::string type, code, param;
  ApiError(int status_, const std::string& message, std::string code_ = "", std::string param_ = "",
           std::string type_ = "invalid_request_error")
      : std::runtime_error(message), status(status_), type(std::move(type_)), code(std::move(code_)),
        param(std::move(param_)) {}
};

// The deepest nesting of arrays/objects a request body may have (checked before it is parsed).
inline constexpr size_t kMaxJsonDepth = 32;

struct Limits {
  int64_t context = 0;  // the model's positions: prompt + max_tokens must fit
  int64_t max_n = 1;    // choices per request (at most the slots)
  size_t max_messages = 500;
  size_t max_message_chars = 8000;  // per message (and per completion prompt), in characters
  size_t max_total_chars = 32000;
  int64_t max_tokens = 4096;          // the largest max_tokens accepted
  int64_t default_max_tokens = 256;   // when the request gives none (cut to what fits)
  size_t max_stops = 4;
  size_t max_stop_chars = 64;
  // /v1/completions: start the prompt with the tokenizer's bos, as nanochat's documents do. A GPT-2
  // is fed the text alone (as transformers and ./sample do); an empty prompt still gets bos.
  bool bos_prefix = true;
};

// Bounds of the completions API's evaluation fields (OpenAI's).
inline constexpr int64_t kMaxLogprobs = 20;  // `logprobs` / `top_logprobs`

struct Job {
  bool chat = true;  // chat.completion vs text_completion
  bool stream = false;
  bool include_usage = false;
  int64_t n = 1;
  // One or more prompts (/v1/completions takes a list); choice p * n + i is prompt p's i-th sample.
  // At most Limits::max_n prompts x n in all: every row of a request decodes at once.
  std::vector<std::vector<int64_t>> prompts;
  // options.logprobs >= 0: each token's logprob and that many alternatives (chat: `top_logprobs`).
  bool echo = false;      // /v1/completions: the prompt's tokens and their logprobs come first
  bool generate = true;   // false: max_tokens 0 with echo, the prompt is scored and nothing sampled
  engine::SamplingOptions options;  // choice i samples with seed options.seed + i
  std::vector<std::string> stop;
};

Job parse_chat_request(const std::string& body, const tok::Tokenizer& tok, const Limits& limits);
Job parse_completion_request(const std::string& body, const tok::Tokenizer& tok, const Limits& limits);

// POST /tokenize ({"prompt": text, "add_special_tokens": true}: <|bos|> first where completions
// add it; special-token names in the text are their ids) and POST /detokenize ({"tokens": ids},
// ids in the vocabulary), as vLLM and lm-eval's remote tokenizer use them.
std::vector<int64_t> parse_tokenize_request(const std::string& body, const tok::Tokenizer& tok, const Limits& limits);
std::vector<uint32_t> parse_detokenize_request(const std::string& body, const tok::Tokenizer& tok);

}  // namespace kiln::serve
