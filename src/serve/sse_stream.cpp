// SseStream; see sse_stream.h.
#include "serve/sse_stream.h"

#include <httplib.h>

#include "serve/request.h"
#include "serve/scheduler.h"

namespace kiln::serve {

SseStream::SseStream(std::shared_ptr<Channel> ch, ReplyHead head, int64_t n, int64_t prompt_tokens, bool include_usage)
    : ch_(std::move(ch)), head_(std::move(head)), n_(n), prompt_tokens_(prompt_tokens), include_usage_(include_usage),
      tokens_(static_cast<size_t>(n), 0) {}

bool SseStream::write(httplib::DataSink& sink) {
  std::string out;
  if (!started_) {  // the role first, as OpenAI does
    started_ = true;
    if (head_.chat)
      for (int64_t i = 0; i < n_; ++i) out += sse(chunk_json(head_, i, "", true, ""));
  }
  for (Delta& d : ch_->pop(std::chrono::milliseconds(out.empty() ? 50 : 0))) {
    if (!d.error.empty()) {
      out += sse(error_json(ApiError(500, kGenerationFailed, "", "", "server_error")));
      ch_->cancel();  // the request's other choices leave the batch too
      done_ = n_;
      break;
    }
    if (!d.text.empty()) out += sse(chunk_json(head_, d.choice, d.text, false, ""));
    tokens_[static_cast<size_t>(d.choice)] = d.tokens;
    if (d.done) {
      out += sse(chunk_json(head_, d.choice, "", false, d.finish));
      ++done_;
    }
  }
  if (done_ == n_) {
    if (include_usage_) {
      int64_t total = 0;
      for (int64_t t : tokens_) total += t;
      out += sse(usage_chunk_json(head_, prompt_tokens_, total));
    }
    out += "data: [DONE]\n\n";
  }
  const auto now = std::chrono::steady_clock::now();
  if (out.empty() && now - last_write_ > std::chrono::seconds(1)) out = ": keep-alive\n\n";
  if (!out.empty()) {
    if (!sink.write(out.data(), out.size())) {
      ch_->cancel();
      return false;
    }
    last_write_ = now;
  }
  if (done_ == n_) sink.done();
  return true;
}

void SseStream::finished(bool success) {
  if (!success || done_ < n_) ch_->cancel();
}

}  // namespace kiln::serve
