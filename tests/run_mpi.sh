#!/usr/bin/env bash
# Run a command under `mpirun -np N` for the test suite. The suite's own mpirun always passes
# --allow-run-as-root (most containers run as root, and a newcomer's ./launch/test.sh must run the
# 2-rank tests there too) and --oversubscribe (2 ranks on a 1-core machine).
set -euo pipefail
np=$1; shift
# Bounded: a hung collective must fail the test, not the CI job.
exec timeout --signal=KILL 240 mpirun -np "$np" --allow-run-as-root --oversubscribe --bind-to none \
  --mca btl self,vader "$@"
