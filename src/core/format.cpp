// format_duration and f9; see format.h.
#include "core/format.h"

#include <cstdio>

namespace kiln {

std::string format_duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  else snprintf(buf, sizeof(buf), "%lds", t);
  return buf;
}

std::string f9(double v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

std::string per_rank_mb(const std::vector<int64_t>& bytes) {
  std::string out;
  for (size_t r = 0; r < bytes.size(); ++r) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%srank %zu %.3f MB", r ? ", " : "", r, double(bytes[r]) / 1e6);
    out += buf;
  }
  return out;
}

}  // namespace kiln
