# Shared by the ci/ scripts: quiet steps that show their log on failure.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOGDIR=${LOGDIR:-$ROOT/build/logs}
mkdir -p "$LOGDIR"

# step NAME -- command...: run quietly; on failure print the log and exit.
step() {
  local name=$1
  shift 2
  local log="$LOGDIR/${name//[^A-Za-z0-9_.-]/_}.log"
  local t0=$SECONDS
  if "$@" >"$log" 2>&1; then
    printf '  %-40s ok (%ds)\n' "$name" $((SECONDS - t0))
  else
    local rc=$?
    printf '  %-40s FAILED (exit %d), log: %s\n' "$name" "$rc" "$log"
    tail -n 60 "$log"
    exit "$rc"
  fi
}

build_preset() {
  step "configure $1" -- cmake --preset "$1"
  step "build $1" -- cmake --build --preset "$1" -j "$(nproc)"
}

# failed_tests_output LOG: from a `ctest -V` log, where each test's lines
# carry its number ("16: ..."), print what each failed test printed in that
# run (its last 80 lines). A test that fails in a run of many and passes
# alone is then still shown failing, in its own words.
failed_tests_output() {
  local log=$1 n name
  sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#([0-9]+): ([^ ]+) .*\*\*\*.*/\1 \2/p' "$log" |
    while read -r n name; do
      echo "  -- test #$n $name failed; what it printed (last 80 lines):"
      grep -E "^$n: " "$log" | tail -n 80 | sed -E "s/^$n: /    /"
    done
}
