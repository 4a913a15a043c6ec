# Sourced by the shell tests: `skip REASON` exits 77 (ctest counts the test as skipped and
# launch/test.sh lists the reason), except under CI=true, where only GPU tests may skip: there a
# missing prerequisite is a failure, so CI can never pass by running nothing.
skip() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL: this test would skip, and CI=true allows no skips: $*" >&2
    exit 1
  fi
  echo "skipped: $*" >&2
  exit 77
}

# data_file REL: the path of test data file REL (e.g. tinyshakespeare/input.txt): under $KILN_DATA
# (default ../shared/data beside the checkout), else fetched with data_tools/fetch.sh into
# build/test_data (network; once); skips when it cannot be had. Use: f=$(data_file R) || exit $?
data_file() {
  local rel=$1 name=${1%%/*} here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  local shared=${KILN_DATA:-$here/../shared/data} cache=${KILN_TEST_CACHE:-$here/build/test_data}
  if [ -f "$shared/$rel" ]; then echo "$shared/$rel"; return 0; fi
  if [ ! -f "$cache/$rel" ]; then
    echo "[test data] $shared/$rel not found: fetching $name with data_tools/fetch.sh into $cache/$name" >&2
    KILN_FETCH_TRIES=${KILN_FETCH_TRIES:-2} "$here/data_tools/fetch.sh" "$name" "$cache/$name" >&2 ||
      skip "$rel is not in $shared and data_tools/fetch.sh $name could not download it (no network?)"
  fi
  [ -f "$cache/$rel" ] || skip "$rel is not in $shared and data_tools/fetch.sh $name does not provide it"
  echo "$cache/$rel"
}
