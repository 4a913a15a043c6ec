// Rank-aware printf logging; see log.h. stdout is flushed per line so that mpirun, Slurm and
// pipes interleave whole lines, never half lines.
#include "core/log.h"

#include <cstdarg>
#include <string>

namespace kiln::log {
namespace {
int g_rank = 0;
int g_world = 1;

void vprint(FILE* out, const char* prefix, const char* fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string line = std::string(prefix) + buf;
  if (line.empty() || line.back() != '\n') line += '\n';
  fputs(line.c_str(), out);
  fflush(out);
}
}  // namespace

void set_rank(int rank, int world) {
  g_rank = rank;
  g_world = world;
}
int rank() { return g_rank; }
int world() { return g_world; }

void info(const char* fmt, ...) {
  if (g_rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vprint(stdout, "", fmt, ap);
  va_end(ap);
}

void warn(const char* fmt, ...) {
  if (g_rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vprint(stderr, "warning: ", fmt, ap);
  va_end(ap);
}

void error(const char* fmt, ...) {
  std::string prefix = g_world > 1 ? "[rank " + std::to_string(g_rank) + "] error: " : "error: ";
  va_list ap;
  va_start(ap, fmt);
  vprint(stderr, prefix.c_str(), fmt, ap);
  va_end(ap);
}

}  // namespace kiln::log
