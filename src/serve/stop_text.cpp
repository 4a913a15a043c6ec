// StopText; see stop_text.h. After each push the unsent text is held_ + the new complete
// characters; the earliest full match of any stop string ends the reply, otherwise the longest
// tail that is a proper prefix of some stop string stays held. A stop string is valid UTF-8, so
// a held tail starts on a character boundary and the sent text never splits a character.
#include "serve/stop_text.h"

#include <algorithm>

namespace kiln::serve {

StopText::StopText(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

StopText::Out StopText::scan(std::string s, bool final) {
  size_t first = std::string::npos;
  for (const auto& stop : stops_) first = std::min(first, s.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    held_.clear();
    s.resize(first);
    return {std::move(s), true};
  }
  size_t hold = 0;
  if (!final)
    for (const auto& stop : stops_)
      for (size_t k = std::min(s.size(), stop.size() - 1); k > hold; --k)
        if (std::string_view(s).substr(s.size() - k) == std::string_view(stop).substr(0, k)) {
          hold = k;
          break;
        }
  held_ = s.substr(s.size() - hold);
  s.resize(s.size() - hold);
  return {std::move(s), false};
}

StopText::Out StopText::push(std::string_view bytes) {
  if (stopped_) return {"", true};
  return scan(held_ + utf8_.push(bytes), false);
}

std::string StopText::flush() {
  if (stopped_) return "";
  return scan(held_ + utf8_.flush(), true).text;
}

}  // namespace kiln::serve
