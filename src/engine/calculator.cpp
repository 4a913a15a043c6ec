// Calculator; see calculator.h. A recursive-descent parser over a bounded input with a depth cap:
// expr := term (('+'|'-') term)*, term := unary (('*'|'/'|'//') unary)*, unary := ('+'|'-') unary
// | atom, atom := number | '(' expr ')'. Ints stay exact int64 (overflow fails), '/' gives a float.
#include "engine/calculator.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace kiln::engine {

namespace {

constexpr size_t kMaxLen = 2000;
constexpr int kMaxDepth = 64;

struct Num {
  bool is_int = true;
  int64_t i = 0;
  double f = 0.0;
  double as_double() const { return is_int ? static_cast<double>(i) : f; }
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  std::optional<Num> parse() {
    auto v = expr(0);
    skip();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;

  void skip() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  char peek() {
    skip();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }

  static std::optional<Num> finite(double f) {
    if (!std::isfinite(f)) return std::nullopt;
    return Num{false, 0, f};
  }

  static std::optional<Num> apply(char op, const Num& a, const Num& b) {
    if (op == '/') {
      const double d = b.as_double();
      if (d == 0.0) return std::nullopt;
      return finite(a.as_double() / d);
    }
    if (op == 'f') {  // floor division: int // int stays int, otherwise floor of the float quotient
      if (a.is_int && b.is_int) {
        if (b.i == 0 || (a.i == INT64_MIN && b.i == -1)) return std::nullopt;
        int64_t q = a.i / b.i;
        if ((a.i % b.i != 0) && ((a.i < 0) != (b.i < 0))) --q;
        return Num{true, q, 0.0};
      }
      // Floats: CPython's float floor division (via fmod), which differs from floor(a / b),
      // e.g. 1 // 0.1 is 9.0.
      const double x = a.as_double(), y = b.as_double();
      if (y == 0.0) return std::nullopt;
      const double mod = std::fmod(x, y);
      double div = (x - mod) / y;
      if (mod != 0.0 && ((y < 0) != (mod < 0))) div -= 1.0;
      if (div != 0.0) {
        double fl = std::floor(div);
        if (div - fl > 0.5) fl += 1.0;
        return finite(fl);
      }
      return finite(std::copysign(0.0, x / y));
    }
    if (a.is_int && b.is_int) {
      int64_t r = 0;
      bool overflow = op == '+' ? __builtin_add_overflow(a.i, b.i, &r)
                      : op == '-' ? __builtin_sub_overflow(a.i, b.i, &r)
                                  : __builtin_mul_overflow(a.i, b.i, &r);
      if (overflow) return std::nullopt;
      return Num{true, r, 0.0};
    }
    const double x = a.as_double(), y = b.as_double();
    return finite(op == '+' ? x + y : op == '-' ? x - y : x * y);
  }

  std::optional<Num> expr(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    auto a = term(depth);
    while (a) {
      const char c = peek();
      if (c != '+' && c != '-') break;
      ++pos_;
      auto b = term(depth);
      if (!b) return std::nullopt;
      a = apply(c, *a, *b);
    }
    return a;
  }

  std::optional<Num> term(int depth) {
    auto a = unary(depth);
    while (a) {
      const char c = peek();
      if (c != '*' && c != '/') break;
      ++pos_;
      char op = c;
      if (pos_ < s_.size() && s_[pos_] == c) {  // ** (power) is refused; // is floor division
        if (c == '*') return std::nullopt;
        op = 'f';
        ++pos_;
      }
      auto b = unary(depth);
      if (!b) return std::nullopt;
      a = apply(op, *a, *b);
    }
    return a;
  }

  std::optional<Num> unary(int depth) {
    if (depth > kMaxDepth) return std::nullopt;
    const char c = peek();
    if (c == '+' || c == '-') {
      ++pos_;
      auto v = unary(depth + 1);
      if (!v || c == '+') return v;
      if (v->is_int) {
        if (v->i == INT64_MIN) return std::nullopt;
        return Num{true, -v->i, 0.0};
      }
      return Num{false, 0, -v->f};
    }
    return atom(depth);
  }

  std::optional<Num> atom(int depth) {
    if (eat('(')) {
      auto v = expr(depth + 1);
      if (!v || !eat(')')) return std::nullopt;
      return v;
    }
    skip();
    const size_t start = pos_;
    size_t digits = 0, dots = 0;
    while (pos_ < s_.size() && ((s_[pos_] >= '0' && s_[pos_] <= '9') || s_[pos_] == '.')) {
      (s_[pos_] == '.' ? dots : digits)++;
      ++pos_;
    }
    if (digits == 0 || dots > 1) return std::nullopt;
    const std::string_view lit = s_.substr(start, pos_ - start);
    if (dots == 0) {
      // Python refuses leading zeros in a nonzero integer literal ("007").
      if (lit.size() > 1 && lit[0] == '0' && lit.find_first_not_of('0') != std::string_view::npos) return std::nullopt;
      int64_t v = 0;
      auto [p, ec] = std::from_chars(lit.data(), lit.data() + lit.size(), v);
      if (ec != std::errc() || p != lit.data() + lit.size()) return std::nullopt;  // beyond int64: refused
      return Num{true, v, 0.0};
    }
    if (lit.size() > 400) return std::nullopt;
    const std::string buf(lit);
    char* end = nullptr;
    const double f = std::strtod(buf.c_str(), &end);
    if (end != buf.c_str() + buf.size()) return std::nullopt;
    return finite(f);
  }
};

// Python's repr of a float: the shortest round-trip digits, fixed notation for exponents in
// [-4, 16), scientific ("1e+16", "1.5e-05") outside.
std::string python_float(double f) {
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

// A Python string literal '...' or "..." without escapes, starting at s[pos]; advances pos.
std::optional<std::string_view> string_literal(std::string_view s, size_t& pos) {
  if (pos >= s.size() || (s[pos] != '\'' && s[pos] != '"')) return std::nullopt;
  const char q = s[pos];
  const size_t end = s.find(q, pos + 1);
  if (end == std::string_view::npos) return std::nullopt;
  auto body = s.substr(pos + 1, end - pos - 1);
  if (body.find('\\') != std::string_view::npos || body.find('\n') != std::string_view::npos) return std::nullopt;
  pos = end + 1;
  return body;
}

// 'text'.count('x'): Python's non-overlapping count, in characters (UTF-8 code points).
std::optional<std::string> count_call(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  size_t pos = 0;
  auto text = string_literal(s, pos);
  if (!text) return std::nullopt;
  constexpr std::string_view kCall = ".count(";
  if (s.substr(pos, kCall.size()) != kCall) return std::nullopt;
  pos += kCall.size();
  auto needle = string_literal(s, pos);
  if (!needle || pos + 1 != s.size() || s[pos] != ')') return std::nullopt;
  int64_t n = 0;
  if (needle->empty()) {
    for (unsigned char c : *text) n += (c & 0xC0) != 0x80;  // code points
    return std::to_string(n + 1);
  }
  for (size_t at = text->find(*needle); at != std::string_view::npos; at = text->find(*needle, at + needle->size()))
    ++n;
  return std::to_string(n);
}

}  // namespace

std::optional<std::string> calculate(std::string_view expr) {
  if (expr.size() > kMaxLen) return std::nullopt;
  if (expr.find(".count(") != std::string_view::npos) return count_call(expr);
  std::string clean;
  for (char c : expr) {
    if (c == ',') continue;  // thousands separators: "1,000" is 1000
    if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '*' || c == '/' || c == '.' || c == '(' ||
          c == ')' || c == ' '))
      return std::nullopt;
    clean += c;
  }
  auto v = Parser(clean).parse();
  if (!v) return std::nullopt;
  return v->is_int ? std::to_string(v->i) : python_float(v->f);
}

}  // namespace kiln::engine
