// Rank-aware logging. Rank 0 prints progress; every rank may print errors, prefixed with
// "[rank R]" when the world has more than one rank. Messages start with a tag such as
// "[config]" or "[dist]". printf-style because g++ 12 has no <format>.
#pragma once
#include <cstdio>

namespace kiln::log {

// Set once by dist::init; before that every process behaves as rank 0 of 1.
void set_rank(int rank, int world);
int rank();
int world();

// Printed by rank 0 only, to stdout.
void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Printed by every rank, to stderr, with a "[rank R] " prefix when world > 1.
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Printed by rank 0 to stderr (warnings that all ranks would repeat).
void warn(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace kiln::log
