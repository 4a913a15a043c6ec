#!/usr/bin/env bash
# Run a command under `mpirun -np N` for the test suite. mpirun refuses root and more ranks than
# cores; the test suite allows both only in CI (CI=true) or when KILN_TEST_ALLOW_ROOT=1, and
# otherwise skips (exit 77) with a message instead of failing on a root dev shell.
set -euo pipefail
np=$1; shift
flags=()
if [ "${CI:-}" = "true" ] || [ "${KILN_TEST_ALLOW_ROOT:-}" = "1" ]; then
  flags+=(--allow-run-as-root --oversubscribe)
elif [ "$(id -u)" = "0" ]; then
  echo "skipped: mpirun refuses to run as root; run as a normal user, or set CI=true or KILN_TEST_ALLOW_ROOT=1" >&2
  exit 77
fi
# Bounded: a hung collective must fail the test, not the CI job.
exec timeout --signal=KILL 240 mpirun -np "$np" "${flags[@]}" --bind-to none --mca btl self,vader \
  "$@"
