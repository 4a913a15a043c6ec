// Calculator; see calculator.h. nanochat's use_calculator (engine.py) in C++: the same commas
// stripped, the same two character allow-lists, the same refusals ("**", the dangerous words, no
// ".count("), then, instead of Python's eval, a parser for what those characters can say in
// Python that kiln supports, evaluated with Python's rules:
//   arithmetic: expr := term (('+'|'-') term)*, term := unary (('*'|'/'|'//') unary)*,
//     unary := ('+'|'-')* atom, atom := number | '(' expr ')' | '(' ')' (the empty tuple);
//     ints exact (64 bits, beyond: refused), '/' correctly rounded, floats IEEE (inf, nan);
//   strings: value := primary ('.' 'count' '(' value ')')*, primary := literal+ | number |
//     '(' value ')' | '(' ')'; literals with r/u/f/b prefixes, adjacent ones concatenated.
// Parentheses nest at most 200 deep (CPython's parser limit); input over 2000 bytes is refused.
#include "engine/calculator.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace kiln::engine {

namespace {

constexpr size_t kMaxLen = 2000;
constexpr int kMaxParens = 200;  // CPython's tokenizer: "too many nested parentheses" beyond 200

// A Python value of the kinds these expressions can make.
struct Val {
  enum Kind { Int, Float, Tuple, Str, Bytes } k = Int;
  int64_t i = 0;
  double f = 0.0;
  std::string s;  // Str / Bytes
  bool number() const { return k == Int || k == Float; }
  double as_double() const { return k == Int ? static_cast<double>(i) : f; }
};
using Opt = std::optional<Val>;

Val int_val(int64_t i) { return Val{Val::Int, i, 0.0, {}}; }
Val float_val(double f) { return Val{Val::Float, 0, f, {}}; }
Val tuple_val() { return Val{Val::Tuple, 0, 0.0, {}}; }

// int / int as CPython computes it: correctly rounded. Operands within 2^53 are exact doubles
// (one rounding); otherwise a quotient of at least 55 bits with a sticky bit for the remainder,
// rounded once by the int -> double conversion.
Opt int_true_div(int64_t a, int64_t b) {
  if (b == 0) return std::nullopt;
  const uint64_t ua = a < 0 ? 0 - static_cast<uint64_t>(a) : static_cast<uint64_t>(a);
  const uint64_t ub = b < 0 ? 0 - static_cast<uint64_t>(b) : static_cast<uint64_t>(b);
  const bool neg = (a < 0) != (b < 0);
  if (ua == 0) return float_val(neg ? -0.0 : 0.0);
  constexpr uint64_t kExact = uint64_t(1) << 53;
  if (ua <= kExact && ub <= kExact) return float_val(static_cast<double>(a) / static_cast<double>(b));
  const int bits_a = 64 - __builtin_clzll(ua), bits_b = 64 - __builtin_clzll(ub);
  const int shift = std::max(0, 56 + bits_b - bits_a);  // (ua << shift) fits 128 bits, quotient >= 2^55
  const unsigned __int128 num = static_cast<unsigned __int128>(ua) << shift;
  uint64_t q = static_cast<uint64_t>(num / ub);
  if (num % ub != 0) q |= 1;
  const double d = std::ldexp(static_cast<double>(q), -shift);
  return float_val(neg ? -d : d);
}

// float // float as CPython's float_floor_div (fmod based: 1 // 0.1 is 9.0).
Opt float_floor_div(double x, double y) {
  if (y == 0.0) return std::nullopt;
  const double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0 && ((y < 0) != (mod < 0))) div -= 1.0;
  if (div != 0.0) {
    double fl = std::floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return float_val(fl);
  }
  return float_val(std::copysign(0.0, x / y));
}

// a op b for op in + - * / f(loor division). Python raises (here: nothing) on a zero divisor and
// on types that do not combine; the empty tuple adds to itself and repeats by an int.
Opt apply(char op, const Val& a, const Val& b) {
  if (a.k == Val::Tuple || b.k == Val::Tuple) {
    if (op == '+' && a.k == Val::Tuple && b.k == Val::Tuple) return tuple_val();
    if (op == '*' && (a.k == Val::Int || b.k == Val::Int)) return tuple_val();
    return std::nullopt;
  }
  if (!a.number() || !b.number()) return std::nullopt;
  if (a.k == Val::Int && b.k == Val::Int) {
    if (op == '/') return int_true_div(a.i, b.i);
    if (op == 'f') {
      if (b.i == 0 || (a.i == INT64_MIN && b.i == -1)) return std::nullopt;
      int64_t q = a.i / b.i;
      if ((a.i % b.i != 0) && ((a.i < 0) != (b.i < 0))) --q;
      return int_val(q);
    }
    int64_t r = 0;
    const bool overflow = op == '+' ? __builtin_add_overflow(a.i, b.i, &r)
                          : op == '-' ? __builtin_sub_overflow(a.i, b.i, &r)
                                      : __builtin_mul_overflow(a.i, b.i, &r);
    if (overflow) return std::nullopt;  // Python's ints are unbounded; kiln's stop at 64 bits
    return int_val(r);
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == '/') return y == 0.0 ? std::nullopt : Opt(float_val(x / y));
  if (op == 'f') return float_floor_div(x, y);
  return float_val(op == '+' ? x + y : op == '-' ? x - y : x * y);  // inf and nan as Python
}

// The parts both grammars share: position, spaces, parenthesis depth, number literals.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool done() { skip(); return pos_ == s_.size(); }

 protected:
  std::string_view s_;
  size_t pos_ = 0;
  int parens_ = 0;

  void skip() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  char peek() {
    skip();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  bool eat(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  bool open() {  // '(' within CPython's nesting limit
    if (peek() != '(' || parens_ >= kMaxParens) return false;
    ++pos_, ++parens_;
    return true;
  }
  bool close() {
    if (!eat(')')) return false;
    --parens_;
    return true;
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  // After '(': ')' makes the empty tuple, else inner() and its ')'.
  template <class F>
  Opt after_open(F inner) {
    if (close()) return tuple_val();
    auto v = inner();
    if (!v || !close()) return std::nullopt;
    return v;
  }

  // A decimal literal: int (no leading zeros unless all zeros; within 64 bits) or float
  // ("1.", ".5", "00.5"; beyond the double range it is inf, as in Python).
  Opt number() {
    skip();
    const size_t start = pos_;
    size_t digits = 0, dots = 0;
    while (pos_ < s_.size() && (digit(s_[pos_]) || s_[pos_] == '.')) (s_[pos_++] == '.' ? dots : digits)++;
    if (digits == 0 || dots > 1) return std::nullopt;
    if (pos_ < s_.size() && (std::isalpha(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      return std::nullopt;  // 1e5, 0x10, 1_000, 1j: Python literals kiln does not read
    const std::string lit(s_.substr(start, pos_ - start));
    if (dots == 0) {
      if (lit.size() > 1 && lit[0] == '0' && lit.find_first_not_of('0') != std::string::npos) return std::nullopt;
      int64_t v = 0;
      auto [p, ec] = std::from_chars(lit.data(), lit.data() + lit.size(), v);
      if (ec != std::errc() || p != lit.data() + lit.size()) return std::nullopt;
      return int_val(v);
    }
    return float_val(std::strtod(lit.c_str(), nullptr));  // correctly rounded, overflow to inf
  }
};

class Arithmetic : public Scanner {
 public:
  using Scanner::Scanner;
  Opt parse() {
    auto v = expr();
    if (!v || !done()) return std::nullopt;
    return v;
  }

 private:
  Opt expr() {
    auto a = term();
    for (char c; a && ((c = peek()) == '+' || c == '-');) {
      ++pos_;
      auto b = term();
      if (!b) return std::nullopt;
      a = apply(c, *a, *b);
    }
    return a;
  }
  Opt term() {
    auto a = unary();
    for (char c; a && ((c = peek()) == '*' || c == '/');) {
      ++pos_;
      char op = c;
      if (c == '/' && pos_ < s_.size() && s_[pos_] == '/') op = 'f', ++pos_;
      auto b = unary();
      if (!b) return std::nullopt;
      a = apply(op, *a, *b);
    }
    return a;
  }
  Opt unary() {  // signs apply right to left: -+-x
    std::string signs;
    for (char c; (c = peek()) == '+' || c == '-';) signs += c, ++pos_;
    auto v = atom();
    for (auto it = signs.rbegin(); v && it != signs.rend(); ++it) {
      if (!v->number()) return std::nullopt;  // -() is a TypeError
      if (*it == '+') continue;
      if (v->k == Val::Float) v->f = -v->f;
      else if (v->i == INT64_MIN) return std::nullopt;
      else v->i = -v->i;
    }
    return v;
  }
  Opt atom() {
    if (open()) return after_open([&] { return expr(); });
    return number();
  }
};

// The string branch: literals, numbers, the empty tuple, parentheses and .count().
class Strings : public Scanner {
 public:
  using Scanner::Scanner;
  Opt parse() {
    auto v = value();
    if (!v || !done()) return std::nullopt;
    return v;
  }

 private:
  Opt value() {
    auto v = primary();
    while (v && eat('.')) {
      skip();
      if (s_.substr(pos_, 5) != "count") return std::nullopt;  // other methods: not supported
      pos_ += 5;
      if (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
        return std::nullopt;
      if (!open()) return std::nullopt;
      auto arg = value();
      if (!arg || !close()) return std::nullopt;
      v = count(*v, *arg);
    }
    return v;
  }

  // str.count(str) / bytes.count(bytes or int 0..255) / ().count(anything); ints and floats have
  // no count (AttributeError), other argument types are TypeErrors.
  static Opt count(const Val& on, const Val& arg) {
    if (on.k == Val::Tuple) return int_val(0);
    if (on.k == Val::Bytes && arg.k == Val::Int) {
      if (arg.i < 0 || arg.i > 255) return std::nullopt;
      return int_val(std::count(on.s.begin(), on.s.end(), static_cast<char>(arg.i)));
    }
    if ((on.k != Val::Str && on.k != Val::Bytes) || arg.k != on.k) return std::nullopt;
    if (arg.s.empty()) return int_val(static_cast<int64_t>(on.s.size()) + 1);  // ASCII: bytes = characters
    int64_t n = 0;
    for (size_t at = on.s.find(arg.s); at != std::string::npos; at = on.s.find(arg.s, at + arg.s.size())) ++n;
    return int_val(n);
  }

  Opt primary() {
    if (open()) return after_open([&] { return value(); });
    const char c = peek();
    if (digit(c) || c == '.') return number();
    Opt lit;  // adjacent literals concatenate ('ab' 'c'); str and bytes do not mix
    while (auto part = literal()) {
      if (lit && lit->k != part->k) return std::nullopt;
      if (!lit) lit = std::move(part);
      else lit->s += part->s;
    }
    return lit;
  }

  // One literal: an optional prefix (r u f b and their pairs), then '...', "...", '''...''' or
  // """...""" (the allow-list has no backslash, so there are no escapes).
  Opt literal() {
    skip();
    size_t p = pos_;
    std::string prefix;
    while (p < s_.size() && std::isalpha(static_cast<unsigned char>(s_[p])) && prefix.size() < 3)
      prefix += static_cast<char>(std::tolower(static_cast<unsigned char>(s_[p++])));
    if (p >= s_.size() || (s_[p] != '\'' && s_[p] != '"')) return std::nullopt;
    static const char* kPrefixes[] = {"", "r", "u", "f", "b", "br", "rb", "fr", "rf"};
    if (std::find_if(std::begin(kPrefixes), std::end(kPrefixes), [&](const char* k) { return prefix == k; }) ==
        std::end(kPrefixes))
      return std::nullopt;
    const std::string quote = s_.substr(p, 3) == std::string(3, s_[p]) ? std::string(3, s_[p]) : std::string(1, s_[p]);
    const size_t end = s_.find(quote, p + quote.size());
    if (end == std::string_view::npos) return std::nullopt;
    Val v;
    v.k = prefix.find('b') != std::string::npos ? Val::Bytes : Val::Str;
    v.s = std::string(s_.substr(p + quote.size(), end - p - quote.size()));
    pos_ = end + quote.size();
    return v;
  }
};

// Python's repr of a float: the shortest round-trip digits, fixed notation for exponents in
// [-4, 16), scientific ("1e+16", "1.5e-05") outside; inf, -inf and nan by name.
std::string python_float(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string s(buf, p);  // like "-2.5e+00" or "1e+16"
  std::string sign;
  if (!s.empty() && s[0] == '-') sign = "-", s.erase(0, 1);
  const size_t e = s.find('e');
  std::string mant = s.substr(0, e);
  const int exp = std::atoi(s.c_str() + e + 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  if (exp >= -4 && exp < 16) {
    std::string out;
    if (exp >= 0) {
      if (static_cast<int>(digits.size()) <= exp + 1) {
        out = digits + std::string(static_cast<size_t>(exp + 1) - digits.size(), '0') + ".0";
      } else {
        out = digits.substr(0, static_cast<size_t>(exp + 1)) + "." + digits.substr(static_cast<size_t>(exp + 1));
      }
    } else {
      out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    }
    return sign + out;
  }
  std::string out = digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return sign + out + ebuf;
}

// str(value) as Python prints it (the engine feeds str(result) back to the model).
std::string python_str(const Val& v) {
  switch (v.k) {
    case Val::Int: return std::to_string(v.i);
    case Val::Float: return python_float(v.f);
    case Val::Tuple: return "()";
    case Val::Str: return v.s;
    case Val::Bytes: {  // repr: single quotes unless the bytes hold ' and no "
      const bool dq = v.s.find('\'') != std::string::npos && v.s.find('"') == std::string::npos;
      std::string out = dq ? "b\"" : "b'";
      for (char c : v.s) out += (!dq && c == '\'') ? std::string("\\'") : std::string(1, c);
      return out + (dq ? "\"" : "'");
    }
  }
  return "";
}

bool only(std::string_view s, std::string_view allowed) {
  return std::all_of(s.begin(), s.end(), [&](char c) { return allowed.find(c) != std::string_view::npos; });
}

}  // namespace

std::optional<std::string> calculate(std::string_view expr) {
  if (expr.size() > kMaxLen) return std::nullopt;
  std::string e;  // nanochat: expr.replace(",", "") -- inside string literals too
  for (char c : expr)
    if (c != ',') e += c;
  Opt v;
  if (only(e, "0123456789*+-/.() ")) {  // a pure math expression
    if (e.find("**") != std::string::npos) return std::nullopt;
    v = Arithmetic(e).parse();
  } else {
    if (!only(e, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'\"()._ ")) return std::nullopt;
    std::string lower(e);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static const char* kDangerous[] = {"__",   "import",    "exec", "eval", "compile", "open",    "file",    "input",
                                       "raw_input", "globals", "locals", "vars", "dir", "getattr", "setattr",
                                       "delattr",   "hasattr"};
    for (const char* d : kDangerous)
      if (lower.find(d) != std::string::npos) return std::nullopt;
    if (e.find(".count(") == std::string::npos) return std::nullopt;
    v = Strings(e).parse();
  }
  if (!v) return std::nullopt;
  return python_str(*v);
}

}  // namespace kiln::engine
