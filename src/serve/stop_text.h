// The text of one streamed reply: token bytes in, text safe to send out. Holds back bytes of an
// unfinished UTF-8 character (engine::Utf8Stream) and the tail that could still become a stop
// string, so a stop string split across tokens is cut exactly and never leaks in part.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "engine/utf8_stream.h"

namespace kiln::serve {

class StopText {
 public:
  explicit StopText(std::vector<std::string> stops = {});

  struct Out {
    std::string text;      // safe to send now (possibly empty)
    bool stopped = false;  // a stop string matched: `text` ends just before it; the reply is over
  };
  // Appends a token's bytes.
  Out push(std::string_view bytes);
  // The end of the reply without a stop match: whatever is still held back.
  std::string flush();

 private:
  Out scan(std::string s, bool final);

  engine::Utf8Stream utf8_;
  std::vector<std::string> stops_;
  std::string held_;  // complete characters that a stop string may start with
  bool stopped_ = false;
};

}  // namespace kiln::serve
