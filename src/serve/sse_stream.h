// The body of a streamed reply ("stream": true) as cpp-httplib's chunked content provider: OpenAI's
// chunks for what the engine produced (the assistant role first, for chat), each choice's finish,
// the usage chunk when asked for, then "data: [DONE]". A failed write (the client went away) or a
// reply that ends early cancels the request, and the engine drops its rows before its next step.
// When nothing was sent for a second a ": keep-alive" comment is written, so a client that left
// while its request still waited in the queue is noticed too.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "serve/openai_json.h"

namespace httplib {
class DataSink;
}

namespace kiln::serve {

class Channel;

// The message a client gets when generation fails: what failed inside goes to the server log only.
inline constexpr const char* kGenerationFailed = "generation failed: an internal error (the server log has the details)";

class SseStream {
 public:
  SseStream(std::shared_ptr<Channel> ch, ReplyHead head, int64_t n, int64_t prompt_tokens, bool include_usage);
  // One call of the provider: what arrived within 50 ms; false ends the reply (client gone).
  bool write(httplib::DataSink& sink);
  // The provider's releaser: a reply that did not reach [DONE] cancels its request.
  void finished(bool success);

 private:
  std::shared_ptr<Channel> ch_;
  ReplyHead head_;
  int64_t n_, prompt_tokens_;
  bool include_usage_, started_ = false;
  std::vector<int64_t> tokens_;  // per choice, the usage count
  int64_t done_ = 0;             // choices finished
  std::chrono::steady_clock::time_point last_write_ = std::chrono::steady_clock::now();
};

}  // namespace kiln::serve
