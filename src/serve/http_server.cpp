// HttpServer; see http_server.h. Every request passes pre_route() after its headers and before
// any byte of its body is read: a refusal there costs no body memory, and the connection closes
// (the body was not read). The completion endpoints then read their body through a receiver that
// stops at 4 MiB after decompression (httplib inflates gzip/deflate/br in 16 KiB pieces into it).
#include "serve/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "serve/http_guard.h"
#include "serve/logprobs_json.h"
#include "serve/openai_json.h"
#include "serve/page.h"
#include "serve/scheduler.h"
#include "serve/sse_stream.h"
#include "tokenizer/tokenizer.h"

namespace kiln::serve {

using nlohmann::json;
namespace {

constexpr size_t kMaxBody = 4u << 20;  // bytes of a request body, after decompression

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The media type of a Content-Type value, without parameters, trimmed and lower-cased.
std::string media_type(const std::string& v) {
  std::string t = v.substr(0, v.find(';'));
  const auto b = t.find_first_not_of(" \t"), e = t.find_last_not_of(" \t");
  return b == std::string::npos ? "" : lower(t.substr(b, e - b + 1));
}

// The host name of a Host header ("127.0.0.1:8000" -> "127.0.0.1", "[::1]:80" -> "::1").
std::string host_name(const std::string& h) {
  if (!h.empty() && h[0] == '[') return lower(h.substr(1, h.find(']') - 1));
  return lower(h.substr(0, h.find(':')));
}

bool loopback(const std::string& name) {
  return name == "localhost" || name == "::1" || name.rfind("127.", 0) == 0;
}

}  // namespace

struct HttpServer::Impl {
  Scheduler& sched;
  std::shared_ptr<const tok::Tokenizer> tok;
  ServerOptions opt;
  GuardedServer svr;
  int64_t started = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();

  static ConnectionLimits connection_limits(const ServerOptions& o) {
    ConnectionLimits c;
    c.request_time = std::chrono::milliseconds(static_cast<int64_t>(o.read_timeout * 1000));
    return c;
  }

  Impl(Scheduler& s, std::shared_ptr<const tok::Tokenizer> t, ServerOptions o)
      : sched(s), tok(std::move(t)), opt(std::move(o)), svr(connection_limits(opt)) {}

  static void send_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(dump(error_json(e)), "application/json");
  }

  // A refusal before the body was read: the connection closes, so its unread body is never parsed
  // as a next request.
  static httplib::Server::HandlerResponse refuse(httplib::Response& res, const ApiError& e) {
    send_error(res, e);
    res.set_header("Connection", "close");
    GuardedServer::close_after_response();
    return httplib::Server::HandlerResponse::Handled;
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) const {
    if (opt.api_key.empty()) return true;
    const std::string want = "Bearer " + opt.api_key;
    const std::string got = req.get_header_value("Authorization");
    unsigned diff = got.size() != want.size();
    for (size_t i = 0; i < want.size(); ++i) diff |= static_cast<unsigned>(want[i] ^ (i < got.size() ? got[i] : 0));
    if (diff == 0) return true;
    refuse(res, ApiError(401, got.empty() ? "missing API key: send the header 'Authorization: Bearer <key>'"
                                          : "incorrect API key",
                         "invalid_api_key"));
    return false;
  }

  // Cross-site requests. A browser sends Origin with every cross-site POST, and a "simple" one
  // (text/plain) without asking first: a page on any site could drive this server. Same-origin
  // (the chat page) and the --cors origins pass. On a loopback server "same-origin" also needs a
  // loopback Host: a DNS-rebinding page is same-origin with its own name.
  bool cross_site_ok(const httplib::Request& req, httplib::Response& res) const {
    if (!req.has_header("Origin")) return true;  // no browser's cross-site request
    const std::string origin = req.get_header_value("Origin"), host = req.get_header_value("Host");
    if (lower(origin) == "http://" + lower(host) && (!loopback(host_name(opt.host)) || loopback(host_name(host))))
      return true;
    for (const auto& o : opt.cors)
      if (o == "*" || lower(o) == lower(origin)) {
        res.set_header("Access-Control-Allow-Origin", origin);
        res.set_header("Vary", "Origin");
        return true;
      }
    refuse(res, ApiError(403, "cross-origin request from '" + origin + "' refused: start ./serve with --cors " +
                                  origin + " to allow that site", "origin_not_allowed"));
    return false;
  }

  // Runs after the headers, before any body byte is read.
  httplib::Server::HandlerResponse pre_route(const httplib::Request& req, httplib::Response& res) {
    using R = httplib::Server::HandlerResponse;
    if (!cross_site_ok(req, res)) return R::Handled;
    // "completion": the JSON POST endpoints (the API key, Content-Type and body checks below).
    const bool completion = req.path == "/v1/chat/completions" || req.path == "/v1/completions" ||
                            req.path == "/tokenize" || req.path == "/detokenize";
    const bool page = req.path == "/" || req.path == "/health" || req.path == "/v1/models" ||
                      req.path == "/tokenizer_info" || req.path == "/metrics";
    const bool has_te = req.has_header("Transfer-Encoding"), has_cl = req.has_header("Content-Length");
    if (req.method == "OPTIONS" && (completion || page)) {  // a CORS preflight (allowed above)
      res.status = 204;
      res.set_header("Allow", completion ? "POST, OPTIONS" : "GET, OPTIONS");
      if (res.has_header("Access-Control-Allow-Origin")) {
        res.set_header("Access-Control-Allow-Methods", completion ? "POST, OPTIONS" : "GET, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
      }
      if (has_te || has_cl) GuardedServer::close_after_response();  // its body is not read
      return R::Handled;
    }
    if (!(completion && req.method == "POST")) {
      // httplib would read a body of any other request whole (POST/PUT/PATCH/DELETE) or parse it
      // as the next request (GET): neither has a body here.
      const bool body = has_te || (has_cl && req.get_header_value("Content-Length") != "0") ||
                        req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                        req.method == "DELETE";
      if (!body) return R::Unhandled;
      if (completion || page)
        return refuse(res, ApiError(405, req.method + " " + req.path + " is not allowed: use " +
                                             (completion ? "POST" : "GET"), "method_not_allowed"));
      return refuse(res, ApiError(404, "unknown path: " + req.method + " " + req.path, "unknown_url"));
    }
    if (media_type(req.get_header_value("Content-Type")) != "application/json")
      return refuse(res, ApiError(415, "the request body must be JSON: send 'Content-Type: application/json'",
                                  "unsupported_media_type"));
    const std::string enc = lower(req.get_header_value("Content-Encoding"));
    if (!enc.empty() && enc != "identity" && enc != "gzip" && enc != "deflate" && enc != "br")
      return refuse(res, ApiError(415, "Content-Encoding '" + enc + "' is not supported: send the body plain, or "
                                       "gzip, deflate or br", "unsupported_media_type"));
    if (!authorized(req, res)) return R::Handled;
    if (has_te && lower(req.get_header_value("Transfer-Encoding")) != "chunked")
      return refuse(res, ApiError(400, "Transfer-Encoding '" + req.get_header_value("Transfer-Encoding") +
                                           "' is not supported: send chunked or a Content-Length", "invalid_request"));
    if (has_te && has_cl)  // the two framings disagree: a proxy and this server could read two requests
      return refuse(res, ApiError(400, "a request may not have both Transfer-Encoding and Content-Length",
                                  "invalid_request"));
    if (!has_te && !has_cl)
      return refuse(res, ApiError(411, "the request needs a Content-Length (or Transfer-Encoding: chunked)",
                                  "length_required"));
    if (has_cl) {
      const std::string v = req.get_header_value("Content-Length");
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
        return refuse(res, ApiError(400, "Content-Length '" + v + "' is not a number", "invalid_request"));
      if (std::stoull(v) > kMaxBody) return refuse(res, too_large());
    }
    return R::Unhandled;
  }

  static ApiError too_large() {
    return ApiError(413, "the request body is too large: at most " + std::to_string(kMaxBody) +
                             " bytes (after decompression)", "request_too_large");
  }

  // A JSON POST endpoint: the body through a receiver capped at kMaxBody, then handle(body).
  template <class Handle>
  void post(httplib::Response& res, const httplib::ContentReader& reader, Handle handle) {
    std::string body;
    bool over = false;
    const bool ok = reader([&](const char* d, size_t n) {
      if (body.size() + n > kMaxBody) return !(over = true);
      body.append(d, n);
      return true;
    });
    if (!ok) {
      GuardedServer::close_after_response();
      res.set_header("Connection", "close");
      const int why = over ? 413 : GuardedServer::body_failure();
      if (why == 413) return send_error(res, too_large());
      if (why == 408)
        return send_error(res, ApiError(408, "the request body did not arrive within " +
                                                 std::to_string(opt.read_timeout) + " s", "timeout"));
      if (why == 503) return send_error(res, ApiError(503, "the server is stopping", "", "", "server_error"));
      return send_error(res, ApiError(400, "the request body could not be read (malformed chunked framing or "
                                           "compressed data)", "invalid_request"));
    }
    handle(body);
  }

  // POST /tokenize and /detokenize.
  void tokenize(const std::string& body, httplib::Response& res) {
    try {
      const auto ids = parse_tokenize_request(body, *tok, opt.limits);
      res.set_content(dump({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", opt.limits.context}}),
                      "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  }
  void detokenize(const std::string& body, httplib::Response& res) {
    try {
      res.set_content(dump({{"prompt", tok->decode(parse_detokenize_request(body, *tok))}}), "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    }
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

  void complete(const std::string& body, httplib::Response& res, bool chat) {
    Job job;
    try {
      job = chat ? parse_chat_request(body, *tok, opt.limits) : parse_completion_request(body, *tok, opt.limits);
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
    (job.chat ? sched.metrics().chat_requests : sched.metrics().completion_requests) += 1;
    for (const auto& p : job.prompts) sched.metrics().prompt_tokens += static_cast<int64_t>(p.size());
    ReplyHead head{job.chat, new_id(job.chat), std::chrono::duration_cast<std::chrono::seconds>(
                                                   std::chrono::system_clock::now().time_since_epoch()).count(),
                   opt.model};
    int64_t prompt_tokens = 0;
    for (const auto& p : job.prompts) prompt_tokens += static_cast<int64_t>(p.size());
    if (!job.stream) return complete_whole(res, ch, head, job, prompt_tokens);
    const int64_t choices = static_cast<int64_t>(job.prompts.size()) * job.n;
    auto sse = std::make_shared<SseStream>(ch, head, choices, prompt_tokens, job.include_usage);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [sse](size_t, httplib::DataSink& sink) { return sse->write(sink); },
        [sse](bool success) { sse->finished(success); });
  }

  void complete_whole(httplib::Response& res, const std::shared_ptr<Channel>& ch, const ReplyHead& head,
                      const Job& job, int64_t prompt_tokens) {
    const int64_t n = static_cast<int64_t>(job.prompts.size()) * job.n;
    std::vector<ChoiceText> choices(static_cast<size_t>(n));
    int64_t done = 0, total = 0;
    while (done < n) {
      if (svr.stopping()) {  // shutting down: the rows leave the batch, the client hears why
        ch->cancel();
        return send_error(res, ApiError(503, "the server is stopping", "", "", "server_error"));
      }
      if (GuardedServer::client_gone()) {  // nobody to answer: the rows leave the batch now
        ch->cancel();
        GuardedServer::close_after_response();
        return;
      }
      for (Delta& d : ch->pop(std::chrono::milliseconds(100))) {
        if (!d.error.empty()) {
          ch->cancel();  // the request's other choices leave the batch too
          return send_error(res, ApiError(500, kGenerationFailed, "", "", "server_error"));
        }
        auto& c = choices[static_cast<size_t>(d.choice)];
        c.text += d.text;
        if (d.done) {
          c.finish = d.finish;
          total += d.tokens;
          ++done;
          const auto& prompt = job.prompts[static_cast<size_t>(d.choice / job.n)];
          if (job.echo) {  // the prompt's tokens' text before the completion's
            std::string echoed;
            for (int64_t id : prompt) echoed += token_bytes(*tok, id);
            c.text = echoed + c.text;
          }
          if (job.options.logprobs >= 0)
            c.logprobs = job.chat ? chat_logprobs(*tok, d.logprobs, static_cast<size_t>(d.tokens))
                                  : completion_logprobs(*tok, prompt, job.echo, d.prompt_logprobs, d.logprobs);
        }
      }
    }
    res.set_content(dump(completion_json(head, choices, prompt_tokens, total)), "application/json");
  }

  void routes() {
    const int threads = opt.threads > 0 ? opt.threads
                                        : static_cast<int>(std::max<int64_t>(
                                              128, 2 * (sched.stats().slots + sched.stats().queue) + 64));
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    svr.set_payload_max_length(kMaxBody);
    // httplib's default also sets SO_REUSEPORT, which lets a second server share a taken port.
    svr.set_socket_options([](int sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
    });
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return pre_route(req, res);
    });
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(kPageHtml), sizeof kPageHtml, "text/html; charset=utf-8");
    });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) { health(res); });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump(models_json(opt.model, started, opt.limits.context)), "application/json");
    });
    svr.Get("/tokenizer_info", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump(tokenizer_info_json(*tok, opt.limits.context)), "application/json");
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(sched.metrics().render(sched.stats()), "text/plain; version=0.0.4; charset=utf-8");
    });
    svr.Post("/v1/chat/completions",
             [this](const httplib::Request&, httplib::Response& res, const httplib::ContentReader& reader) {
               post(res, reader, [&](const std::string& body) { complete(body, res, true); });
             });
    svr.Post("/v1/completions",
             [this](const httplib::Request&, httplib::Response& res, const httplib::ContentReader& reader) {
               post(res, reader, [&](const std::string& body) { complete(body, res, false); });
             });
    svr.Post("/tokenize",
             [this](const httplib::Request&, httplib::Response& res, const httplib::ContentReader& reader) {
               post(res, reader, [&](const std::string& body) { tokenize(body, res); });
             });
    svr.Post("/detokenize",
             [this](const httplib::Request&, httplib::Response& res, const httplib::ContentReader& reader) {
               post(res, reader, [&](const std::string& body) { detokenize(body, res); });
             });
    // Whatever httplib refuses by itself (no route: 404, a bad request line: 400, ...) in OpenAI's shape.
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = res.status == 404 ? "unknown path: " + req.method + " " + req.path
                        : res.status == 413 ? "the request body is too large"
                                            : "the request was refused (HTTP " + std::to_string(res.status) + ")";
      send_error(res, ApiError(res.status, msg, res.status == 404 ? "unknown_url" : ""));
    });
    // An exception's text (a library's, with its internals) goes to the log, never to the client.
    svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      log::warn("[serve] %s %s failed: %s", req.method.c_str(), req.path.c_str(), what.c_str());
      send_error(res, ApiError(500, "internal server error (the server log has the details)", "", "", "server_error"));
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
  I.svr.raise_backlog(512);
  return port;
}

void HttpServer::listen() { impl_->svr.listen_after_bind(); }
void HttpServer::stop() { impl_->svr.stop(); }

}  // namespace kiln::serve
