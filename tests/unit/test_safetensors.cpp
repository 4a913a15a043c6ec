// safetensors I/O (src/model/safetensors.*): round trip of every dtype kiln writes, metadata,
// byte layout of the header, and the user errors: truncated file, garbage header, missing or
// mis-shaped tensor on load into a model. Python-side readability is shown by test_model_parity.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/gpt.h"
#include "ckpt/copy_into.h"  // load_safetensors_into
#include "model/safetensors.h"
#include "test_util.h"

using namespace kiln::model;
using kiln::ckpt::load_safetensors_into;

namespace {

// Runs f, expecting a kiln::Error whose message contains every string in `parts`.
template <class F>
void expect_error(F f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no kiln::Error thrown";
  } catch (const kiln::Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Safetensors, RoundTripDtypesShapesAndMetadata) {
  const auto path = kiln::test::temp_dir() + "/t.safetensors";
  NamedTensors in{
      {"f32", torch::randn({3, 5})},
      {"bf16", torch::randn({7}).to(torch::kBFloat16)},
      {"f16", torch::randn({2, 2, 2}).to(torch::kFloat16)},
      {"i64", torch::arange(-5, 6, torch::kLong)},
      {"i32", torch::arange(4, torch::kInt).view({2, 2})},
      {"u8", torch::randint(255, {9}, torch::kLong).to(torch::kUInt8)},
      {"scalar", torch::tensor(3.25, torch::kFloat64)},
      {"empty", torch::empty({0, 4})},
      {"strided", torch::randn({4, 6}).t()},  // non-contiguous input
  };
  save_safetensors(path, in, {{"format", "kiln"}, {"step", "12"}});
  std::map<std::string, std::string> meta;
  auto out = load_safetensors(path, &meta);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    ASSERT_TRUE(out.count(name)) << name;
    EXPECT_EQ(out[name].scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(out[name], t)) << name;
  }
  EXPECT_EQ(meta.at("format"), "kiln");
  EXPECT_EQ(meta.at("step"), "12");
  // Layout: 8-byte little-endian header length, header padded so the data is 8-byte aligned.
  std::ifstream f(path, std::ios::binary);
  uint64_t hlen = 0;
  f.read(reinterpret_cast<char*>(&hlen), 8);
  EXPECT_EQ(hlen % 8, 0u);
  std::string h(hlen, '\0');
  f.read(h.data(), std::streamsize(hlen));
  EXPECT_NE(h.find("\"dtype\":\"BF16\""), std::string::npos) << h;
}

TEST(Safetensors, TruncatedOrGarbageFilesNameTheFile) {
  const auto dir = kiln::test::temp_dir();
  const auto path = dir + "/w.safetensors";
  save_safetensors(path, {{"big", torch::randn({64, 64})}});
  const auto full = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, full - 100);
  expect_error([&] { load_safetensors(path); }, {path, "'big'", "truncated"});
  std::filesystem::resize_file(path, 5);
  expect_error([&] { load_safetensors(path); }, {path});
  {
    std::ofstream g(dir + "/junk.safetensors", std::ios::binary);
    const uint64_t n = 4;
    g.write(reinterpret_cast<const char*>(&n), 8);
    g << "{{{{";
  }
  expect_error([&] { load_safetensors(dir + "/junk.safetensors"); }, {"junk.safetensors", "JSON"});
  expect_error([&] { load_safetensors(dir + "/missing.safetensors"); }, {"missing.safetensors"});
}

TEST(Safetensors, LoadIntoModelChecksNamesAndShapes) {
  const auto dir = kiln::test::temp_dir();
  kiln::ModelConfig m;
  m.depth = 1;
  m.width = 64;
  m.n_head = 2;
  m.seq_len = 8;
  GPT a(GPTConfig::from(m, 70)), b(GPTConfig::from(m, 70));
  a->init_weights(1);
  b->init_weights(2);
  save_safetensors(dir + "/a.safetensors", named_parameters_of(*a));
  load_safetensors_into(dir + "/a.safetensors", named_parameters_of(*b));
  for (const auto& p : a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), b->named_parameters()[p.key()]));

  m.width = 128;  // another shape
  GPT wide(GPTConfig::from(m, 70));
  expect_error([&] { load_safetensors_into(dir + "/a.safetensors", named_parameters_of(*wide)); },
               {"a.safetensors", "transformer.wte.weight", "shape"});
  auto params = named_parameters_of(*a);
  params.pop_back();  // file has lm_head.weight, the target lacks it
  expect_error([&] { load_safetensors_into(dir + "/a.safetensors", params); }, {"a.safetensors", "lm_head.weight"});
  params = named_parameters_of(*a);
  params.emplace_back("extra.weight", torch::zeros({2}));
  expect_error([&] { load_safetensors_into(dir + "/a.safetensors", params); }, {"a.safetensors", "extra.weight"});
}
