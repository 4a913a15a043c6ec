// Utf8Stream; see utf8_stream.h. Only the last (at most 3) bytes can be an unfinished character,
// so each push looks at the tail only: O(bytes pushed).
#include "engine/utf8_stream.h"

namespace kiln::engine {

namespace {
// Length of the UTF-8 sequence a lead byte announces; 0 for a continuation or invalid byte.
int sequence_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}
}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  // Find the last lead byte within the final 4 bytes; hold from it if its sequence is unfinished
  // and everything after it is a continuation byte (so it can still complete).
  size_t cut = pending_.size();
  const size_t n = pending_.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(pending_[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    const int len = sequence_length(c);
    if (len > static_cast<int>(back)) cut = n - back;  // incomplete but may still complete
    break;
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace kiln::engine
