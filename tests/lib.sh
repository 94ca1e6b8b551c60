# Shared by the shell tests: a scratch directory $T (removed on exit) and
# the assertions. Each test ends with `finish NAME`.
# shellcheck shell=bash

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

# expect CODE DESCRIPTION -- command...: run, compare the exit code; the
# command's output stays in $T/out and $T/err for the checks after it.
expect() {
  local want=$1 what=$2
  shift 3
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $what: exit $got, expected $want" >&2
    sed 's/^/  stdout: /' "$T/out" >&2
    sed 's/^/  stderr: /' "$T/err" >&2
  fi
}

# check DESCRIPTION -- test...: a plain assertion.
check() {
  local what=$1
  shift 2
  if "$@"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $what" >&2
  fi
}

# has TEXT: the last command's stdout contains TEXT.
has() { grep -qF -- "$1" "$T/out"; }

finish() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
