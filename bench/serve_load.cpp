// serve_load: the load generator of bench/serve_bench.sh, in C++ (cpp-httplib, no torch): the
// same 16 streamed chat requests as bench/serve_bench.py, one at a time, then by 4 and by 16
// concurrent clients (each takes the next request when its last one is done), against one server.
// Why a second client: on a 2-core machine the client shares the cores with ./serve, and the
// Python openai client (pydantic per chunk, 16 threads on one GIL) takes a large share of them at
// 16 clients. This one costs little CPU, so its table shows what the server itself does; the
// bench prints both. Same output as serve_bench.py: the table, then "summary: {json}".
//   serve_load BASE_URL [REQUESTS=16] [MAX_TOKENS=64] [--label NAME] [--engine TOK_PER_S]
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Reply {
  double ttft_s = 0;
  std::string text;
  int64_t tokens = 0;
};

// One streamed request: reads the SSE body as it comes, "data: {...}" lines until "data: [DONE]".
Reply one(const std::string& host, int port, int i, int max_tokens) {
  httplib::Client cli(host, port);
  cli.set_read_timeout(600, 0);
  const nlohmann::json body = {
      {"model", "kiln"},
      {"messages", {{{"role", "user"}, {"content", "Request " + std::to_string(i) + ": tell me about the sea."}}}},
      {"max_tokens", max_tokens}, {"temperature", 1.0}, {"seed", 1000 + i}, {"stream", true},
      {"stream_options", {{"include_usage", true}}}};
  Reply r;
  std::string buf;
  bool first = true;
  const auto t0 = Clock::now();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = {{"Authorization", "Bearer none"}};
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buf.append(data, n);
    for (size_t eol; (eol = buf.find('\n')) != std::string::npos; buf.erase(0, eol + 1)) {
      const std::string line = buf.substr(0, eol);
      if (line.rfind("data: ", 0) != 0 || line == "data: [DONE]") continue;
      const auto j = nlohmann::json::parse(line.substr(6));
      if (j.contains("usage") && j["usage"].is_object()) r.tokens = j["usage"].value("completion_tokens", 0);
      for (const auto& c : j.value("choices", nlohmann::json::array())) {
        const auto d = c.value("delta", nlohmann::json::object());
        if (d.contains("content") && d["content"].is_string() && !d["content"].get<std::string>().empty()) {
          if (first) r.ttft_s = since(t0), first = false;
          r.text += d["content"].get<std::string>();
        }
      }
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  if (!cli.send(req, res, err) || res.status != 200)
    throw std::runtime_error("request " + std::to_string(i) + " failed: " + httplib::to_string(err) + " status " +
                             std::to_string(res.status));
  if (first) r.ttft_s = since(t0);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string label = "kiln";
  double engine = 0;
  for (int a = 1; a < argc; ++a) {
    const std::string s = argv[a];
    if (s == "--label" && a + 1 < argc) label = argv[++a];
    else if (s == "--engine" && a + 1 < argc) engine = std::atof(argv[++a]);
    else pos.push_back(s);
  }
  if (pos.empty() || pos[0].rfind("http://", 0) != 0) {
    fprintf(stderr, "usage: serve_load http://HOST:PORT [REQUESTS=16] [MAX_TOKENS=64] [--label NAME] [--engine TOK_PER_S]\n");
    return 2;
  }
  const std::string hp = pos[0].substr(7);
  const auto colon = hp.rfind(':');
  const std::string host = hp.substr(0, colon);
  const int port = colon == std::string::npos ? 80 : std::atoi(hp.c_str() + colon + 1);
  const int n = pos.size() > 1 ? std::atoi(pos[1].c_str()) : 16;
  const int max_tokens = pos.size() > 2 ? std::atoi(pos[2].c_str()) : 64;
  try {
    one(host, port, 0, 4);  // warm-up
    struct Row {
      int clients;
      double wall, tps, mean, p50, max;
      int64_t tokens;
      int same;
    };
    std::vector<Row> rows;
    std::vector<std::string> ref;
    for (int clients : {1, 4, 16}) {
      std::vector<Reply> out(n);
      std::atomic<int> next{0};
      std::string error;
      std::mutex mu;
      const auto t0 = Clock::now();
      std::vector<std::thread> pool;
      for (int c = 0; c < clients; ++c)
        pool.emplace_back([&] {
          for (int i; (i = next++) < n;) {
            try {
              out[i] = one(host, port, i, max_tokens);
            } catch (const std::exception& e) {
              std::lock_guard<std::mutex> l(mu);
              error = e.what();
            }
          }
        });
      for (auto& t : pool) t.join();
      const double wall = since(t0);
      if (!error.empty()) throw std::runtime_error(error);
      std::vector<double> ttft;
      int64_t tokens = 0;
      for (const auto& r : out) ttft.push_back(r.ttft_s * 1000), tokens += r.tokens;
      if (ref.empty())
        for (const auto& r : out) ref.push_back(r.text);
      int same = 0;
      for (int i = 0; i < n; ++i) same += out[i].text == ref[i];
      std::vector<double> sorted = ttft;
      std::sort(sorted.begin(), sorted.end());
      const double p50 = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
      rows.push_back({clients, wall, tokens / wall, std::accumulate(ttft.begin(), ttft.end(), 0.0) / n, p50,
                      sorted.back(), tokens, same});
    }
    printf("\n%d streamed chat requests of up to %d tokens each, one server, one run (client: bench/serve_load, C++)\n\n",
           n, max_tokens);
    printf("| clients | wall s | tokens | tokens/s | vs one at a time | TTFT mean ms | TTFT p50 ms | TTFT max ms | same text as alone |\n");
    printf("|--------:|-------:|-------:|---------:|-----------------:|-------------:|------------:|------------:|-------------------:|\n");
    for (const auto& r : rows)
      printf("| %s | %.2f | %lld | %.0f | %.2fx | %.0f | %.0f | %.0f | %d/%d |\n",
             r.clients == 1 ? "1 (one at a time)" : std::to_string(r.clients).c_str(), r.wall,
             static_cast<long long>(r.tokens), r.tps, r.tps / rows[0].tps, r.mean, r.p50, r.max, r.same, n);
    nlohmann::json s = {{"label", label},
                        {"tok_s", {{"1", rows[0].tps}, {"4", rows[1].tps}, {"16", rows[2].tps}}},
                        {"x4", rows[1].tps / rows[0].tps},
                        {"x16", rows[2].tps / rows[0].tps},
                        {"same", std::min({rows[0].same, rows[1].same, rows[2].same})},
                        {"n", n},
                        {"ttft_p50_16", rows[2].p50}};
    if (engine > 0) s["engine_b16"] = engine, s["of_engine"] = rows[2].tps / engine;
    printf("summary: %s\n", s.dump().c_str());
  } catch (const std::exception& e) {
    fprintf(stderr, "serve_load: %s\n", e.what());
    return 1;
  }
  return 0;
}
