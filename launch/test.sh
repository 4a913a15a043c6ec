#!/usr/bin/env bash
# Run the whole test suite: build what changed, then ctest (unit tests, the 2-rank mpirun tests,
# end-to-end checks). Test data comes from ../shared/data when present (KILN_DATA overrides).
# mpirun refuses root: tests that need it skip unless CI=true or KILN_TEST_ALLOW_ROOT=1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || ./launch/setup.sh
cmake --build build -j "${KILN_JOBS:-$(nproc)}"
export KILN_DATA=${KILN_DATA:-$(cd .. && pwd)/shared/data}
cd build
ctest --output-on-failure --timeout 900 -j 1 "$@"
