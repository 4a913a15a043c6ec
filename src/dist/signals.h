// Graceful stop on SIGTERM / SIGUSR1 (Slurm's pre-kill warning): the handler only records the
// signal; stop_requested() all-reduces it (MAX) so every rank stops at the same step boundary,
// checkpoints and exits 0. A second signal exits at once with 128+signal,
// unless it comes within the duplicate window (see Note [Duplicate signals] in signals.cpp).
#pragma once

namespace kiln::dist {

// Installs the handlers for SIGTERM and SIGUSR1 (idempotent). Call once in main, after
// dist::init. duplicate_window_s: a second signal that arrives sooner than this after the first
// is taken as the same request delivered twice (Slurm and the launcher both signal) and ignored.
void install_stop_handlers(double duplicate_window_s = 1.0);

// Collective: every rank must call it at the same point (once per step, at the step boundary).
// True on every rank when any rank has received SIGTERM or SIGUSR1 so far.
bool stop_requested();

// This rank's first stop signal (SIGTERM, SIGUSR1), or 0 if none arrived here. Local, no MPI.
int stop_signal();

// Forget a received signal (tests; a process that keeps running after a stop).
void clear_stop_signal();

}  // namespace kiln::dist
