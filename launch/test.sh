#!/usr/bin/env bash
# Run the whole test suite: build what changed, then ctest (unit tests, the 2-rank mpirun tests,
# end-to-end checks, the ASan/UBSan fuzz test), then say how many tests skipped and why. Test data
# comes from ../shared/data when present (KILN_DATA overrides); without it the end-to-end tests
# fetch tinyshakespeare with data_tools/fetch.sh. Under CI=true a skip fails the run (GPU tests
# excepted). The suite's mpirun runs as root too (--allow-run-as-root): containers are root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || ./launch/setup.sh
cmake --build build -j "${KILN_JOBS:-$(nproc)}"
if [ -z "${KILN_DATA:-}" ] && [ -d ../shared/data ]; then export KILN_DATA=$(cd .. && pwd)/shared/data; fi
# Tiny CPU models spend most of a step at OpenMP barriers: spinning idle threads steal the cores
# from the other ranks and processes of a test (20x slower steps on a loaded 2-core machine).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd build
rc=0
ctest --output-on-failure --timeout 900 -j 1 --output-junit ctest-results.xml "$@" || rc=$?
python3 ../tests/skip_summary.py ctest-results.xml || rc=1
exit $rc
