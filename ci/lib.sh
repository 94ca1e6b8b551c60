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
