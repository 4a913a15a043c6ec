// ./serve — an OpenAI-compatible API and a web chat page for a checkpoint, with continuous
// batching: loads the model, hands it to one engine thread (serve::Scheduler) and serves HTTP
// (serve::HttpServer) until SIGINT / SIGTERM.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "dist/comm.h"            // pick_device
#include "dist/dist.h"            // guarded_main
#include "engine/generator.h"     // Generator
#include "serve/http_server.h"    // HttpServer, ServerOptions
#include "serve/scheduler.h"      // Scheduler
#include "ckpt/load_model.h"      // load_model
#include "tokenizer/prompt.h"     // prompt_starts_with_bos

namespace {

int serve_main(int argc, char** argv) {
  CLI::App app{"Serve a checkpoint: an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models) "
               "and a chat page at /.\n\nUsage:\n  ./serve --ckpt ckpt/sft/            then open http://127.0.0.1:8000/",
               "serve"};
  std::string ckpt, device = "auto";
  kiln::serve::ServerOptions o;
  int64_t slots = 8, queue = -1, prefill_chunk = 512;
  // Half the cores for the model's ops by default: the HTTP threads, tokenizing and streaming
  // need the rest, and on a small model a second OpenMP thread costs more at each op's barrier
  // than it saves (bench/serve_bench.sh).
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = std::max(1, cores / 2);
  app.add_option("--ckpt", ckpt, "checkpoint directory (its newest complete step) or a run directory")->required();
  app.add_option("--host", o.host, "address to listen on (127.0.0.1: this machine only; 0.0.0.0: all)");
  app.add_option("--port", o.port, "port (0 = any free port)")->check(CLI::Range(0, 65535));
  app.add_option("--slots", slots, "requests (rows) decoded together in one batch")->check(CLI::Range(1, 256));
  app.add_option("--queue", queue, "rows that may wait for a slot before requests get 503 (default: 4 x slots)")
      ->check(CLI::Range(0, 4096));
  app.add_option("--prefill-chunk", prefill_chunk,
                 "prompt tokens fed per engine step; a longer prompt prefills over several steps so that the rows "
                 "already decoding keep getting a token every step (0 = whole prompts)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  app.add_option("--threads", threads,
                 "CPU threads for the model's ops (default: half the cores, " + std::to_string(threads) + " here)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--api-key", o.api_key, "require 'Authorization: Bearer KEY' on the completion endpoints");
  app.add_option("--model-name", o.model, "the model id /v1/models lists (default: the checkpoint's directory name)");
  app.add_option("--max-tokens", o.limits.max_tokens, "largest max_tokens a request may ask for")
      ->check(CLI::PositiveNumber);
  app.add_option("--default-max-tokens", o.limits.default_max_tokens, "max_tokens when a request gives none")
      ->check(CLI::PositiveNumber);
  app.add_option("--cors", o.cors,
                 "an origin (e.g. https://app.example) whose pages may call the API cross-site; repeat for more, "
                 "'*' for any (default: none, only the served page)");
  app.add_option("--read-timeout", o.read_timeout, "seconds a client has to send a request's headers and body")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--device", device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (queue < 0) queue = 4 * slots;
  if (!app.count("--model-name")) {
    auto p = std::filesystem::path(ckpt).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();
    o.model = p.filename().empty() ? "kiln" : p.filename().string();
  }
  // SIGINT / SIGTERM are taken by a thread of their own (sigwait), so they reach no worker thread.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that left: the write fails, the process lives

  const torch::Device dev = kiln::dist::pick_device(device, "--device");
  auto m = kiln::ckpt::load_model(ckpt, dev);
  o.limits.context = m.model->max_positions();
  o.limits.max_n = slots;
  o.limits.bos_prefix = kiln::tok::prompt_starts_with_bos(*m.tokenizer);
  at::set_num_threads(threads);
  kiln::engine::Generator gen(m.model, m.tokenizer, slots);
  gen.set_prefill_chunk(prefill_chunk);
  kiln::serve::Scheduler scheduler(std::move(gen), m.tokenizer, slots, queue);
  kiln::serve::HttpServer server(scheduler, m.tokenizer, o);
  const int port = server.bind();
  // The first signal stops the server (requests in flight end, connections close); a second one
  // exits at once, for a stop that hangs.
  std::atomic<bool> stopped{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (stopped) return;
    std::fprintf(stderr, "kiln serve: stopping (send the signal again to exit at once)\n");
    server.stop();
    sigwait(&sigs, &sig);
    if (stopped) return;
    std::fprintf(stderr, "kiln serve: second signal: exiting now\n");
    std::_Exit(128 + sig);
  });
  std::printf("kiln serve: http://%s:%d/ (model %s, step %lld, %lld slots, queue %lld, context %lld, %s)\n",
              o.host.c_str(), port, o.model.c_str(), static_cast<long long>(m.step), static_cast<long long>(slots),
              static_cast<long long>(queue), static_cast<long long>(o.limits.context), dev.is_cuda() ? "cuda" : "cpu");
  std::fflush(stdout);
  server.listen();
  stopped = true;
  pthread_kill(waiter.native_handle(), SIGTERM);  // release the waiter
  waiter.join();
  std::printf("kiln serve: stopped\n");
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(serve_main, argc, argv); }
