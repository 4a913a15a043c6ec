// ./tokenizer train|encode|decode|info — byte-level BPE tokenizer tool (issue #3).
// Today it parses its subcommands and says plainly that the tokenizer is not implemented yet.
#include <CLI/CLI.hpp>

#include <cstdio>

namespace {
int not_yet(const char* what) {
  fprintf(stderr, "tokenizer %s: not implemented yet in this build (the BPE tokenizer does not exist)\n", what);
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train and use a byte-level BPE tokenizer.\n\nStatus of this build: the subcommands parse; "
               "none is implemented yet.", "tokenizer"};
  app.require_subcommand(1);
  auto* train = app.add_subcommand("train", "train a tokenizer from text/jsonl files or folders");
  int64_t vocab = 65536, max_chars = 10000000000LL, doc_cap = 10000;
  std::string output, field = "text", tok, file;
  std::vector<std::string> inputs;
  train->add_option("--vocab-size", vocab, "vocabulary size including special tokens");
  train->add_option("--output", output, "tokenizer JSON to write")->required();
  train->add_option("--max-chars", max_chars, "characters to read at most");
  train->add_option("--doc-cap", doc_cap, "characters per document at most");
  train->add_option("--field", field, "jsonl field holding the text");
  train->add_option("INPUT", inputs, "files or folders")->required();
  auto* encode = app.add_subcommand("encode", "write the ids of FILE to stdout");
  encode->add_option("--tokenizer", tok)->required();
  encode->add_option("FILE", file)->required();
  auto* decode = app.add_subcommand("decode", "write the bytes of the ids in IDS_FILE to stdout");
  decode->add_option("--tokenizer", tok)->required();
  decode->add_option("IDS_FILE", file)->required();
  auto* info = app.add_subcommand("info", "print a tokenizer's vocabulary size, specials and hash");
  info->add_option("--tokenizer", tok)->required();
  CLI11_PARSE(app, argc, argv);
  return not_yet(app.get_subcommands().front()->get_name().c_str());
}
