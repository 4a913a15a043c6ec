// Incremental text for streamed tokens: byte-level BPE tokens may split a UTF-8 character, so
// bytes are held back until the character is complete. A printed prefix is never a partial
// character; bytes that can never complete (invalid UTF-8) are passed through, not held forever.
#pragma once
#include <string>
#include <string_view>

namespace kiln::engine {

class Utf8Stream {
 public:
  // Appends bytes; returns the text that is now safe to print (possibly empty).
  std::string push(std::string_view bytes);
  // The rest, complete or not (end of the stream).
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace kiln::engine
