// ./prepare — turn text / jsonl / conversations into HDF5 token shards (issue #3).
// Today it parses its flags and says plainly that shard writing is not implemented yet.
#include <CLI/CLI.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"Tokenize text, jsonl or conversations into train/val HDF5 shards.\n\n"
               "Status of this build: flags parse; shard writing is not implemented yet.", "prepare"};
  std::string tok, output;
  bool chat = false;
  double val_fraction = 0.01;
  std::vector<std::string> inputs;
  app.add_option("--tokenizer", tok, "tokenizer JSON")->required();
  app.add_option("--output", output, "output directory for {train,val}_NNNN.h5")->required();
  app.add_flag("--chat", chat, "inputs are conversations (messages lists, GSM8K question/answer)");
  app.add_option("--val-fraction", val_fraction, "fraction of documents for validation");
  app.add_option("INPUT", inputs, "files or folders")->required();
  CLI11_PARSE(app, argc, argv);
  fprintf(stderr, "prepare: not implemented yet in this build (no shard writer exists)\n");
  return 2;
}
