# Run comparisons (sourced by tests/dist/lib.sh and tests/multinode/lib.sh): check_close (two runs
# within bounds) and check_parity (an N-rank run against 1 rank with N times the batch, within
# bounds, and against a wrong setup, far outside them). Needs $root and fail.
# check_parity NP_RUN NP1_RUN WRONG_RUN STEP LABEL: compare_runs.py of the N-rank run (batch B per
# rank) against the 1-rank run with N x B, which must agree within LOSS_BOUND / WEIGHT_BOUND, and
# against a wrong setup (1 rank, batch B), which must exceed WRONG_LOSS / WRONG_WEIGHT. Prints the
# measured figures beside their bounds. PARITY_N (default 2) is N, for the printed lines.
# val "loss=.. val=.. weights=.." KEY: one figure of compare_runs.py's line; le A B: A <= B.
val() { sed -E "s/.*$2=([^ ]*).*/\1/" <<<"$1"; }
le() { "${KILN_PYTHON:-python3}" -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; }
# check_close RUN REF STEP LABEL LOSS_BOUND WEIGHT_BOUND: compare_runs.py of RUN against REF,
# printed, and within the bounds (train and validation losses, final weights).
check_close() {
  local cmp
  cmp=$("${KILN_PYTHON:-python3}" "$root/tests/dist/compare_runs.py" "$1" "$2" "$3") || fail "compare: $cmp"
  echo "$4: $cmp (bounds: loss $5, weights $6)"
  le "$(val "$cmp" loss)" "$5" || fail "$4: losses differ by more than $5"
  le "$(val "$cmp" val)" "$5" || fail "$4: validation losses differ by more than $5"
  le "$(val "$cmp" weights)" "$6" || fail "$4: weights differ by more than $6"
}
check_parity() {
  local good bad py=${KILN_PYTHON:-python3}
  good=$("$py" "$root/tests/dist/compare_runs.py" "$1" "$2" "$4") || fail "compare: $good"
  bad=$("$py" "$root/tests/dist/compare_runs.py" "$1" "$3" "$4") || fail "compare: $bad"
  local n=${PARITY_N:-2}
  echo "$5: $n ranks x B vs 1 rank x ${n}B: $good (bounds: loss $LOSS_BOUND, weights $WEIGHT_BOUND)"
  echo "$5: $n ranks x B vs 1 rank x B (wrong): $bad (must exceed loss $WRONG_LOSS, weights $WRONG_WEIGHT)"
  le "$(val "$good" loss)" "$LOSS_BOUND" || fail "train losses differ by more than $LOSS_BOUND"
  le "$(val "$good" val)" "$LOSS_BOUND" || fail "validation losses differ by more than $LOSS_BOUND"
  le "$(val "$good" weights)" "$WEIGHT_BOUND" || fail "final weights differ by more than $WEIGHT_BOUND"
  le "$WRONG_LOSS" "$(val "$bad" loss)" || fail "the wrong setup is not distinguishable by loss"
  le "$WRONG_WEIGHT" "$(val "$bad" weights)" || fail "the wrong setup is not distinguishable by weights"
}
