// ./tokenizer train|encode|decode|info|import-gpt2 — train, use or import a byte-level BPE tokenizer. Scripts rely
// on this command-line shape (issue #3); all logic lives in src/tokenizer so tests can reach it.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"          // Error
#include "core/json_file.h"      // read_text_file
#include "tokenizer/gpt2_files.h" // import_gpt2_files
#include "tokenizer/tokenizer.h" // Tokenizer
#include "tokenizer/train.h"     // TrainOptions, train_tokenizer

namespace {
void print_compression(const kiln::tok::Tokenizer& tok, const std::string& path) {
  std::string text = kiln::read_text_file(path);
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok.encode(text);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  printf("[tokenizer] held-out %s: %zu bytes -> %zu tokens, %.3f bytes/token (encoded at %.1f MB/s on one core)\n",
         path.c_str(), text.size(), ids.size(), ids.empty() ? 0.0 : double(text.size()) / double(ids.size()),
         s > 0 ? double(text.size()) / 1e6 / s : 0.0);
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train and use a byte-level BPE tokenizer (GPT-4 split pattern, nanochat's special tokens).", "tokenizer"};
  app.require_subcommand(1);
  auto* train = app.add_subcommand("train", "train a tokenizer from text/jsonl files or folders");
  int64_t vocab = 65536, max_chars = 10000000000LL, doc_cap = 10000;
  unsigned threads = 0;
  std::string output, field = "text", tok_path, file, held_out;
  std::vector<std::string> inputs;
  train->add_option("--vocab-size", vocab, "vocabulary size: 256 bytes + merges + 9 specials (265 = byte-level)");
  train->add_option("--output", output, "tokenizer JSON to write")->required();
  train->add_option("--max-chars", max_chars, "characters to read at most, over all inputs");
  train->add_option("--doc-cap", doc_cap, "characters per JSONL document at most (0 = no cap); a text file is one document");
  train->add_option("--field", field, "jsonl field holding the text");
  train->add_option("--held-out", held_out, "text file to report compression (bytes/token) on");
  train->add_option("--threads", threads, "threads for counting (0 = all cores)");
  train->add_option("INPUT", inputs, "files or folders (*.jsonl: one document per record; else plain text)")->required();
  auto* encode = app.add_subcommand("encode", "write the ids of FILE (ordinary text) to stdout, space-separated");
  encode->add_option("--tokenizer", tok_path)->required();
  encode->add_option("FILE", file)->required();
  auto* decode = app.add_subcommand("decode", "write the bytes of the ids in IDS_FILE to stdout");
  decode->add_option("--tokenizer", tok_path)->required();
  decode->add_option("IDS_FILE", file)->required();
  auto* info = app.add_subcommand("info", "print a tokenizer's vocabulary size, specials and hash");
  info->add_option("--tokenizer", tok_path)->required();
  auto* import_gpt2 = app.add_subcommand("import-gpt2", "convert OpenAI's GPT-2 encoder.json + vocab.bpe (or Hugging "
                                                        "Face's vocab.json + merges.txt) into a kiln tokenizer JSON");
  std::string encoder_json, vocab_bpe;
  import_gpt2->add_option("--encoder", encoder_json, "encoder.json (Hugging Face: vocab.json)")->required();
  import_gpt2->add_option("--vocab", vocab_bpe, "vocab.bpe (Hugging Face: merges.txt)")->required();
  import_gpt2->add_option("--output", output, "tokenizer JSON to write")->required();
  CLI11_PARSE(app, argc, argv);

  try {
    using kiln::tok::Tokenizer;
    if (train->parsed()) {
      if (vocab < 265 || vocab > (int64_t(1) << 31) || max_chars <= 0 || doc_cap < 0)
        throw kiln::Error("[tokenizer] --vocab-size " + std::to_string(vocab) + " / --max-chars / --doc-cap out of range",
                          "--vocab-size counts 256 bytes + 9 specials: use at least 265; --max-chars > 0; --doc-cap >= 0");
      kiln::tok::TrainOptions o;
      o.inputs = inputs;
      o.vocab_size = uint32_t(vocab);
      o.max_chars = uint64_t(max_chars);
      o.doc_cap = uint64_t(doc_cap);
      o.field = field;
      o.threads = threads;
      o.verbose = true;
      kiln::tok::TrainStats st;
      auto tok = kiln::tok::train_tokenizer(o, &st);
      tok.save(output);
      printf("[tokenizer] read %llu documents, %.1f MB (%llu chars), %llu distinct chunks in %.2f s; %zu merges in %.2f s\n",
             (unsigned long long)st.docs, double(st.bytes) / 1e6, (unsigned long long)st.chars,
             (unsigned long long)st.unique_chunks, st.count_seconds, tok.merges().size(), st.merge_seconds);
      printf("[tokenizer] wrote %s: vocab %u, sha256 %s\n", output.c_str(), tok.vocab_size(), tok.sha256().c_str());
      if (!held_out.empty()) print_compression(tok, held_out);
    } else if (encode->parsed()) {
      auto tok = Tokenizer::load(tok_path);
      auto ids = tok.encode(kiln::read_text_file(file));
      std::string out;
      out.reserve(ids.size() * 6);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ' ';
        out += std::to_string(ids[i]);
      }
      out += '\n';
      fwrite(out.data(), 1, out.size(), stdout);
    } else if (decode->parsed()) {
      auto tok = Tokenizer::load(tok_path);
      std::istringstream in(kiln::read_text_file(file));
      std::vector<uint32_t> ids;
      std::string w;
      while (in >> w) {
        char* end = nullptr;
        unsigned long v = strtoul(w.c_str(), &end, 10);
        if (*end || w[0] == '-' || v > 0xffffffffUL)
          throw kiln::Error("[tokenizer] " + file + ": '" + w + "' is not a token id", "give whitespace-separated ids");
        ids.push_back(uint32_t(v));
      }
      std::string bytes = tok.decode(ids);
      fwrite(bytes.data(), 1, bytes.size(), stdout);
    } else if (import_gpt2->parsed()) {
      auto tok = kiln::tok::import_gpt2_files(encoder_json, vocab_bpe);
      tok.save(output);
      printf("[tokenizer] wrote %s: GPT-2 byte-level BPE, vocab %u (%zu merges, %s = %u), sha256 %s\n", output.c_str(),
             tok.vocab_size(), tok.merges().size(), tok.specials().front().c_str(), tok.bos_id(), tok.sha256().c_str());
    } else if (info->parsed()) {
      auto tok = Tokenizer::load(tok_path);
      printf("tokenizer %s\n  vocab_size %u (256 bytes + %zu merges + %zu specials)\n  sha256 %s\n  pattern %s\n",
             tok_path.c_str(), tok.vocab_size(), tok.merges().size(), tok.specials().size(),
             tok.sha256().c_str(), tok.pattern().c_str());
      for (const auto& s : tok.specials()) printf("  %-20s %u\n", s.c_str(), tok.special_id(s));
    }
  } catch (const kiln::Error& e) {
    fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const std::exception& e) {  // filesystem, I/O, memory: still a message, never a crash
    fprintf(stderr, "[tokenizer] %s\n  hint: check the paths given, their permissions and free disk space\n", e.what());
    return 1;
  }
  return 0;
}
