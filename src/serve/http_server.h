// The HTTP side of ./serve on cpp-httplib: the routes (/, /health, /v1/models, /metrics, /tokenizer_info,
// /tokenize, /detokenize,
// /v1/chat/completions, /v1/completions), the checks made before a body is read (Host and Origin,
// Content-Type, Content-Encoding, length, API key), SSE streaming with disconnect detection, and
// OpenAI-shaped errors for every refusal (400, 401, 403, 404, 405, 408, 411, 413, 415, 431, 503,
// 500). What a connection may cost (header, body and time caps) is serve/http_guard.h's.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "serve/request.h"

namespace kiln::tok {
class Tokenizer;
}

namespace kiln::serve {

class Scheduler;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;            // 0: any free port
  std::string api_key;        // empty: no key needed
  std::string model = "kiln"; // the id /v1/models lists and replies carry
  int threads = 0;            // HTTP worker threads; 0: max(128, 2 x (slots + queue) + 64)
  std::vector<std::string> cors;  // origins (scheme://host[:port]) allowed cross-site; "*": any
  double read_timeout = 10;       // seconds for a request's headers and body to arrive
  Limits limits;
};

class HttpServer {
 public:
  HttpServer(Scheduler& scheduler, std::shared_ptr<const tok::Tokenizer> tok, ServerOptions options);
  ~HttpServer();
  // Binds (throws kiln::Error when it cannot) and returns the port.
  int bind();
  // Serves until stop().
  void listen();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::serve
