#!/usr/bin/env bash
# No kiln binary may import std::filesystem::remove_all: libtorch.so exports its own broken copy of
# it, and a binary that binds to that copy crashes on the first directory it deletes (it did on
# the H200 image, 12-04; see src/core/remove_tree.h). kiln deletes directories with remove_tree.
# Usage: no_torch_filesystem.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: no_torch_filesystem.sh BIN_DIR}
command -v nm >/dev/null || { echo "FAIL: nm (binutils) is needed"; exit 1; }
n=0 bad=0
for f in "$bin"/*; do
  [ -f "$f" ] && [ -x "$f" ] || continue
  [ "$(head -c 4 "$f" | tail -c 3)" = ELF ] || continue
  n=$((n + 1))
  syms=$(nm -D --undefined-only "$f" 2>/dev/null) || { echo "FAIL: nm cannot read $f"; bad=1; continue; }
  if grep -q 'filesystem10remove_all' <<<"$syms"; then  # a here-string: no SIGPIPE under pipefail
    echo "FAIL: $(basename "$f") imports std::filesystem::remove_all (use kiln::remove_tree, core/remove_tree.h)"
    bad=1
  fi
done
[ "$n" -ge 5 ] || { echo "FAIL: only $n binaries found in $bin"; exit 1; }
[ "$bad" -eq 0 ] || exit 1
echo "OK: none of the $n binaries in $bin imports std::filesystem::remove_all"
