// The calculator and the UTF-8 text stream of the engine (issue 10): known answers as Python
// prints them; a list of hostile inputs and a randomized fuzz loop that must yield no output (or a
// value) quickly and never crash; random arithmetic checked against Python's own eval; streamed
// text never ends in a partial character.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/calculator.h"
#include "engine/utf8_stream.h"
#include "test_util.h"

using kiln::engine::calculate;

TEST(EngineCalculator, KnownAnswers) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1+2", "3"},          {"12*3", "36"},         {"48/2", "24.0"},         {"10/4", "2.5"},
      {"1,000*3", "3000"},   {"(2+3)*4", "20"},     {"-3+-(2)", "-5"},        {"7//2", "3"},
      {"-7//2", "-4"},       {"7.5//2", "3.0"},     {" 2 * ( 3 + 4 ) ", "14"}, {"0.1+0.2", "0.30000000000000004"},
      {"1/3", "0.3333333333333333"}, {"1e", ""},    {"10000000000000000.0", "1e+16"}, {"0.00001", "1e-05"},
      {"1.5", "1.5"},        {"3.", "3.0"},         {".5*2", "1.0"},          {"2-3*4", "-10"},
      {"'strawberry'.count('r')", "3"}, {"\"banana\".count(\"an\")", "2"}, {"'aaaa'.count('aa')", "2"},
      {"'abc'.count('')", "4"}, {"'héé'.count('é')", "2"}, {"'héé'.count('')", "4"},
      {"9223372036854775807+0", "9223372036854775807"}, {"-9223372036854775807-1", "-9223372036854775808"},
  };
  for (const auto& [expr, want] : cases) {
    auto got = calculate(expr);
    if (want.empty()) {
      EXPECT_FALSE(got) << expr;
    } else {
      ASSERT_TRUE(got) << expr;
      EXPECT_EQ(*got, want) << expr;
    }
  }
}

std::vector<std::string> hostile_inputs() {
  std::vector<std::string> h = {
      "", " ", "1/0", "1//0", "0/0", "1.0/0.0", "5/(2-2)", "2**10", "2**2**2**2**2", "9223372036854775807+1",
      "-9223372036854775808//-1", "99999999999999999999", "3037000500*3037000500", "1e308*10", "(", ")", "((1)",
      "(1))", "1+", "+", "*1", "1..2", "1.2.3", "007", "__import__('os').system('ls')", "open('/etc/passwd')",
      "exec('1')", "eval('1')", "lambda: 1", "[1]*10**9", "'a'*10**9", "x", "1 2", "(1)(2)", "'a'.count('a'",
      "'a'.count(a)", "'a\\'b'.count('b')", "'a'.count('a').count('a')", "'a'.upper()", "1;2", "1\n2",
      "\xff\xfe", "'abc'.count('b') + 1", "'abc'.__class__", "().__class__.__bases__",
      "import os", "1 if 1 else 2", "True", "None", "1e5", "0x10", "1_000", "~1", "1%2", "1<<62<<62",
  };
  h.push_back(std::string("\0", 1));
  h.push_back(std::string("1+2\0", 4));                       // an embedded NUL
  h.push_back(std::string(100000, '('));                       // deep nesting, over the length cap
  h.push_back(std::string(1000, '(') + "1" + std::string(1000, ')'));  // deep nesting, under the cap
  h.push_back(std::string(1999, '-') + "1");                   // unary chain
  h.push_back(std::string(1500, '9'));                         // a huge number
  h.push_back("1" + std::string(400, '0') + ".5");              // a huge float literal
  h.push_back("1" + std::string(308, '0') + ".0*10");           // overflows to inf
  h.push_back("1" + std::string(309, '0') + ".0");              // inf as a literal
  h.push_back("'" + std::string(1000000, 'a') + "'.count('a')");  // a long string
  std::string long_sum;
  for (int i = 0; i < 600; ++i) long_sum += "1+";
  h.push_back(long_sum + "1");  // long but legal: 601
  return h;
}

TEST(EngineCalculator, HostileInputsYieldNothingQuickly) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& s : hostile_inputs()) {
    auto got = calculate(s);
    if (s.rfind("1+1+", 0) == 0) {
      EXPECT_EQ(got.value_or("none"), "601");  // long but legal
    } else {
      EXPECT_FALSE(got) << s.substr(0, 60) << " gave " << got.value_or("");
    }
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
}

TEST(EngineCalculator, FuzzNeverCrashesOrHangs) {
  std::mt19937_64 rng(12345);
  const std::string alphabet = "0123456789+-*/.() ,'\"countabc\\";
  const auto t0 = std::chrono::steady_clock::now();
  size_t answered = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const size_t len = rng() % 40;
    for (size_t j = 0; j < len; ++j) s += alphabet[rng() % alphabet.size()];
    if (i % 4 == 0) s = "'" + s + "'.count('" + alphabet.substr(rng() % 10, 1) + "')";
    if (i % 97 == 0) s = std::string(rng() % 3000, "(-+"[rng() % 3]) + s;
    if (i % 11 == 0) s[rng() % std::max<size_t>(1, s.size())] = static_cast<char>(rng() % 256);
    answered += calculate(s).has_value();
  }
  EXPECT_GT(answered, 100u);  // the fuzz reaches the evaluator, not only the syntax checks
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

// Random arithmetic over ints and floats, evaluated by Python's eval in one process: wherever
// Python gives an int within 64 bits or a finite float, kiln gives the same text; where kiln
// answers, Python agrees.
TEST(EngineCalculator, MatchesPythonEval) {
  std::mt19937_64 rng(777);
  std::function<std::string(int)> gen = [&](int depth) -> std::string {
    const int k = static_cast<int>(rng() % (depth > 3 ? 2 : 6));
    if (k == 0) return std::to_string(rng() % 2000);
    if (k == 1) return std::to_string(rng() % 100) + "." + std::to_string(rng() % 100);
    if (k == 2 && rng() % 3 == 0) return "0.1";  // 1 // 0.1 == 9.0 in Python
    if (k == 2) return "(" + gen(depth + 1) + ")";
    if (k == 3) return "-" + gen(depth + 1);
    const char* ops[] = {" + ", "-", " * ", "/", "//"};
    return gen(depth + 1) + ops[rng() % 5] + gen(depth + 1);
  };
  std::vector<std::string> exprs;
  for (int i = 0; i < 400; ++i) exprs.push_back(gen(0));
  const std::string dir = kiln::test::temp_dir();
  {
    std::ofstream f(dir + "/exprs.txt");
    for (const auto& e : exprs) f << e << "\n";
  }
  const std::string py =
      "import sys\n"
      "for line in open(sys.argv[1]):\n"
      "    try:\n"
      "        r = eval(line.strip(), {'__builtins__': {}}, {})\n"
      "        ok = (isinstance(r, int) and -2**63 <= r < 2**63) or (isinstance(r, float) and r == r and abs(r) != float('inf'))\n"
      "        print(str(r) if ok else 'NONE')\n"
      "    except Exception:\n"
      "        print('NONE')\n";
  {
    std::ofstream f(dir + "/ref.py");
    f << py;
  }
  const std::string cmd = std::string(KILN_PYTHON) + " " + dir + "/ref.py " + dir + "/exprs.txt > " + dir + "/out.txt";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "python3 is needed for the reference";
  std::ifstream in(dir + "/out.txt");
  std::string want;
  size_t compared = 0;
  for (const auto& e : exprs) {
    ASSERT_TRUE(std::getline(in, want));
    EXPECT_EQ(calculate(e).value_or("NONE"), want) << e;
    compared += want != "NONE";
  }
  EXPECT_GT(compared, 300u);
}

TEST(EngineUtf8Stream, NeverEmitsPartialCharacters) {
  const std::string text = "héllo wörld — 日本語 🍓 ok";
  // Every way of cutting the bytes into two or three pieces prints the same complete text.
  for (size_t a = 0; a <= text.size(); ++a)
    for (size_t b = a; b <= text.size(); b += 3) {
      kiln::engine::Utf8Stream s;
      std::string out;
      for (auto piece : {text.substr(0, a), text.substr(a, b - a), text.substr(b)}) {
        auto got = s.push(piece);
        // A chunk never ends inside a character: its last lead byte's sequence is complete.
        size_t i = got.size();
        while (i > 0 && (static_cast<unsigned char>(got[i - 1]) & 0xC0) == 0x80) --i;
        if (i > 0) {
          const unsigned char c = static_cast<unsigned char>(got[i - 1]);
          const size_t need = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
          EXPECT_EQ(got.size() - (i - 1), need) << "cut " << a << "," << b;
        }
        out += got;
      }
      out += s.flush();
      EXPECT_EQ(out, text);
    }
  // Byte by byte: the strawberry comes out whole, in one piece.
  kiln::engine::Utf8Stream s;
  const std::string berry = "🍓";
  EXPECT_EQ(s.push(berry.substr(0, 1)), "");
  EXPECT_EQ(s.push(berry.substr(1, 2)), "");
  EXPECT_EQ(s.push(berry.substr(3)), berry);
  // Invalid bytes pass through instead of being held forever.
  EXPECT_EQ(s.push("\xff" "a"), "\xff" "a");
  EXPECT_EQ(s.push("\x80"), "\x80");
}
