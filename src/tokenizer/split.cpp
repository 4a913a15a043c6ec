// PCRE2 wrapper for the split pattern. One compiled, JIT-ed pattern is shared by all threads;
// match data and the JIT stack are thread-local (PCRE2 requires that) and sized once per thread.
// PCRE2_MATCH_INVALID_UTF lets the matcher skip over invalid UTF-8 instead of failing the subject.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/split.h"

#include <pcre2.h>

#include <atomic>
#include <unordered_map>

#include "core/error.h"

namespace kiln::tok {

namespace {
std::atomic<uint64_t> g_next_id{1};

// Per-thread PCRE2 state for one Splitter (keyed by its id, so a destroyed Splitter's state is
// never reused by a new one at the same address).
struct ThreadState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ~ThreadState() {
    if (md) pcre2_match_data_free(md);
    if (mctx) pcre2_match_context_free(mctx);
    if (stack) pcre2_jit_stack_free(stack);
  }
};
}  // namespace

struct Splitter::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  uint64_t id = 0;
  ThreadState& state() const {
    thread_local std::unordered_map<uint64_t, ThreadState> states;
    auto& s = states[id];
    if (!s.md) {
      s.md = pcre2_match_data_create_from_pattern(code, nullptr);
      s.mctx = pcre2_match_context_create(nullptr);
      s.stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
      pcre2_jit_stack_assign(s.mctx, nullptr, s.stack);
    }
    return s;
  }
};

Splitter::Splitter(const std::string& pattern, const std::string& where) : impl_(new Impl) {
  int err = 0;
  PCRE2_SIZE off = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(where + ": the split pattern does not compile at offset " + std::to_string(off) + ": " +
                    reinterpret_cast<char*>(msg),
                "use a PCRE2-compatible regular expression (the default is the GPT-4 pattern)");
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
  impl_->id = g_next_id++;
}

Splitter::~Splitter() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

bool Splitter::next_match(std::string_view text, size_t start, size_t* b, size_t* e) const {
  auto& s = impl_->state();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), start, 0, s.md, s.mctx)
                      : pcre2_match(impl_->code, subject, text.size(), start, 0, s.md, s.mctx);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    throw Error(std::string("[tokenizer] PCRE2 match failed: ") + reinterpret_cast<char*>(msg));
  }
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.md);
  *b = ov[0];
  *e = ov[1];
  if (*e == *b) {  // an empty match cannot happen with the GPT-4 pattern; guard custom patterns
    *e = *b + 1;
  }
  return true;
}

size_t safe_cut(std::string_view text) {
  for (size_t p = text.size(); p >= 2; --p) {
    unsigned char c = static_cast<unsigned char>(text[p - 1]);
    if (text[p - 2] == '\n' && c > 0x20 && c < 0x7f) return p - 1;
  }
  return 0;
}

}  // namespace kiln::tok
