// HttpServer; see http_server.h. A streamed reply is a chunked SSE body whose provider pops the
// request's Channel every 50 ms; a failed write (the client went away) or a provider that ends
// early cancels the request, and the engine drops its rows before its next step. When nothing was
// sent for a second a ": keep-alive" comment is written, so a client that left while its request
// still waited in the queue is noticed too.
#include "serve/http_server.h"

#include <httplib.h>

#include <chrono>
#include <random>

#include "core/error.h"
#include "serve/openai_json.h"
#include "serve/page.h"
#include "serve/scheduler.h"

namespace kiln::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct HttpServer::Impl {
  Scheduler& sched;
  std::shared_ptr<const tok::Tokenizer> tok;
  ServerOptions opt;
  httplib::Server svr;
  int64_t started = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();

  Impl(Scheduler& s, std::shared_ptr<const tok::Tokenizer> t, ServerOptions o)
      : sched(s), tok(std::move(t)), opt(std::move(o)) {}

  static void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(dump(error_json(e)), "application/json");
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) const {
    if (opt.api_key.empty()) return true;
    const std::string want = "Bearer " + opt.api_key;
    const std::string got = req.get_header_value("Authorization");
    unsigned diff = got.size() != want.size();
    for (size_t i = 0; i < want.size(); ++i) diff |= static_cast<unsigned>(want[i] ^ (i < got.size() ? got[i] : 0));
    if (diff == 0) return true;
    send_error(res, ApiError(401, got.empty() ? "missing API key: send the header 'Authorization: Bearer <key>'"
                                              : "incorrect API key",
                             "invalid_api_key"));
    return false;
  }

  static std::string new_id(bool chat) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
    return std::string(chat ? "chatcmpl-" : "cmpl-") + buf;
  }

  void health(httplib::Response& res) const {
    const SchedulerStats s = sched.stats();
    json j = {{"status", "ok"},          {"model", opt.model},           {"slots", s.slots},
              {"queue", s.queue},        {"live_rows", s.live_rows},     {"queued_rows", s.queued_rows},
              {"steps", s.steps},        {"requests", s.requests},       {"cancelled", s.cancelled},
              {"rejected", s.rejected},  {"tokens", s.tokens},           {"last_admit_step", s.last_admit_step},
              {"last_cancel_step", s.last_cancel_step}};
    res.set_content(dump(j), "application/json");
  }

  void complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    if (!authorized(req, res)) return;
    Job job;
    try {
      job = chat ? parse_chat_request(req.body, *tok, opt.limits) : parse_completion_request(req.body, *tok, opt.limits);
    } catch (const ApiError& e) {
      return send_error(res, e);
    }
    auto ch = sched.submit(job);
    if (!ch) {
      const SchedulerStats s = sched.stats();
      res.set_header("Retry-After", "1");
      return send_error(res, ApiError(503, "the server is busy: all " + std::to_string(s.slots) + " slots and " +
                                               std::to_string(s.queue) + " queue places are taken; retry later",
                                      "server_busy", "", "server_error"));
    }
    ReplyHead head{job.chat, new_id(job.chat), std::chrono::duration_cast<std::chrono::seconds>(
                                                   std::chrono::system_clock::now().time_since_epoch()).count(),
                   opt.model};
    const int64_t prompt_tokens = static_cast<int64_t>(job.prompt.size());
    if (!job.stream) return complete_whole(res, ch, head, job.n, prompt_tokens);
    struct State {
      std::shared_ptr<Channel> ch;
      ReplyHead head;
      int64_t n, prompt_tokens;
      bool include_usage, started = false;
      std::vector<int64_t> tokens;
      int64_t done = 0;
      Clock::time_point last_write = Clock::now();
    };
    auto st = std::make_shared<State>(State{ch, head, job.n, prompt_tokens, job.include_usage});
    st->tokens.assign(static_cast<size_t>(job.n), 0);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [st](size_t, httplib::DataSink& sink) {
          std::string out;
          if (!st->started) {  // the role first, as OpenAI does
            st->started = true;
            if (st->head.chat)
              for (int64_t i = 0; i < st->n; ++i) out += sse(chunk_json(st->head, i, "", true, ""));
          }
          for (Delta& d : st->ch->pop(std::chrono::milliseconds(out.empty() ? 50 : 0))) {
            if (!d.error.empty()) {
              out += sse(error_json(ApiError(500, "generation failed: " + d.error, "", "", "server_error")));
              st->done = st->n;
              break;
            }
            if (!d.text.empty()) out += sse(chunk_json(st->head, d.choice, d.text, false, ""));
            st->tokens[static_cast<size_t>(d.choice)] = d.tokens;
            if (d.done) {
              out += sse(chunk_json(st->head, d.choice, "", false, d.finish));
              ++st->done;
            }
          }
          if (st->done == st->n) {
            if (st->include_usage) {
              int64_t total = 0;
              for (int64_t t : st->tokens) total += t;
              out += sse(usage_chunk_json(st->head, st->prompt_tokens, total));
            }
            out += "data: [DONE]\n\n";
          }
          if (out.empty() && Clock::now() - st->last_write > std::chrono::seconds(1)) out = ": keep-alive\n\n";
          if (!out.empty()) {
            if (!sink.write(out.data(), out.size())) {
              st->ch->cancel();
              return false;
            }
            st->last_write = Clock::now();
          }
          if (st->done == st->n) sink.done();
          return true;
        },
        [st](bool success) {
          if (!success || st->done < st->n) st->ch->cancel();
        });
  }

  void complete_whole(httplib::Response& res, const std::shared_ptr<Channel>& ch, const ReplyHead& head, int64_t n,
                      int64_t prompt_tokens) {
    std::vector<ChoiceText> choices(static_cast<size_t>(n));
    int64_t done = 0, total = 0;
    while (done < n) {
      for (Delta& d : ch->pop(std::chrono::milliseconds(100))) {
        if (!d.error.empty())
          return send_error(res, ApiError(500, "generation failed: " + d.error, "", "", "server_error"));
        auto& c = choices[static_cast<size_t>(d.choice)];
        c.text += d.text;
        if (d.done) {
          c.finish = d.finish;
          total += d.tokens;
          ++done;
        }
      }
    }
    res.set_content(dump(completion_json(head, choices, prompt_tokens, total)), "application/json");
  }

  void routes() {
    const int threads = opt.threads > 0 ? opt.threads
                                        : static_cast<int>(std::max<int64_t>(
                                              32, 2 * (sched.stats().slots + sched.stats().queue) + 8));
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    svr.set_payload_max_length(4u << 20);
    // httplib's default also sets SO_REUSEPORT, which lets a second server share a taken port.
    svr.set_socket_options([](int sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
    });
    svr.set_keep_alive_timeout(2);
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(kPageHtml), sizeof kPageHtml, "text/html; charset=utf-8");
    });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) { health(res); });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump(models_json(opt.model, started, opt.limits.context)), "application/json");
    });
    svr.Post("/v1/chat/completions",
             [this](const httplib::Request& req, httplib::Response& res) { complete(req, res, true); });
    svr.Post("/v1/completions",
             [this](const httplib::Request& req, httplib::Response& res) { complete(req, res, false); });
    // Whatever httplib refuses by itself (no route: 404, body too large: 413, ...) in OpenAI's shape.
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = res.status == 404 ? "unknown path: " + req.method + " " + req.path
                        : res.status == 413 ? "the request body is too large"
                                            : "the request was refused (HTTP " + std::to_string(res.status) + ")";
      send_error(res, ApiError(res.status, msg, res.status == 404 ? "unknown_url" : ""));
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, ApiError(500, "internal server error: " + what, "", "", "server_error"));
    });
  }
};

HttpServer::HttpServer(Scheduler& scheduler, std::shared_ptr<const tok::Tokenizer> tok, ServerOptions options)
    : impl_(std::make_unique<Impl>(scheduler, std::move(tok), std::move(options))) {
  impl_->routes();
}
HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  auto& I = *impl_;
  int port = I.opt.port;
  const bool ok = port == 0 ? (port = I.svr.bind_to_any_port(I.opt.host)) > 0 : I.svr.bind_to_port(I.opt.host, port);
  if (!ok)
    throw Error("serve: cannot listen on " + I.opt.host + ":" + std::to_string(I.opt.port),
                "is another server on that port? pick one with --port (0 = any free port)");
  return port;
}

void HttpServer::listen() { impl_->svr.listen_after_bind(); }
void HttpServer::stop() { impl_->svr.stop(); }

}  // namespace kiln::serve
