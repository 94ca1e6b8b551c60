#!/usr/bin/env bash
# The steps of boxguard's GitHub Action (action.yml): the typeId and
# adapter-registration check of a Flutter (or C) repository against its
# committed lock.
#
#   typeids.sh build   build the boxguard command into $BOXGUARD_BUILD
#                      (default $RUNNER_TEMP/boxguard), installing its
#                      Debian/Ubuntu packages first when they are missing;
#                      nothing when $BOXGUARD_BIN is already a boxguard
#   typeids.sh check   run `boxguard typeids check` over $BG_PATHS (space
#                      separated; default .) against $BG_LOCK (default
#                      typeids.lock), with $BG_POLICY when set: SARIF to
#                      $BG_SARIF (default boxguard-typeids.sarif), GitHub
#                      annotations (the first 10) and every finding in the
#                      job summary; `findings` and `sarif` to $GITHUB_OUTPUT.
#                      Exit 0 clean, 1 findings, 2 a missing lock or bad
#                      input, 3 a tree that could not be read.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BOXGUARD_BUILD:-${RUNNER_TEMP:-/tmp}/boxguard}
bin=${BOXGUARD_BIN:-$build/engine/boxguard}

out() { [ -n "${GITHUB_OUTPUT:-}" ] && echo "$1=$2" >>"$GITHUB_OUTPUT"; return 0; }

case ${1:-} in
build)
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "boxguard: using $bin"
    exit 0
  fi
  pkgs=(build-essential cmake ninja-build pkg-config libsodium-dev
    libcjson-dev libxxhash-dev libsqlite3-dev libarchive-dev)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null || exit 3
  fi
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$build" --target boxguard_cli >/dev/null || exit 3
  echo "boxguard: built $bin"
  ;;
check)
  lock=${BG_LOCK:-typeids.lock} sarif=${BG_SARIF:-boxguard-typeids.sarif}
  read -r -a paths <<<"${BG_PATHS:-.}"
  if [ ! -f "$lock" ]; then
    echo "::error title=typeids::no lock file '$lock': create it with \`boxguard typeids check --update-lock --lock $lock ${paths[*]}\` and commit it"
    exit 2
  fi
  opts=(--lock "$lock")
  [ -n "${BG_POLICY:-}" ] && opts+=(--policy "$BG_POLICY")
  "$bin" typeids check "${opts[@]}" --format sarif "${paths[@]}" >"$sarif"
  rc=$?
  if [ "$rc" -gt 1 ]; then
    rm -f "$sarif"
    "$bin" typeids check "${opts[@]}" "${paths[@]}" >/dev/null # says why
    exit "$rc"
  fi
  out sarif "$sarif"
  "$bin" typeids check "${opts[@]}" --format github "${paths[@]}"
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["runs"][0]["results"]))' "$sarif" 2>/dev/null ||
    grep -c '"ruleId"' "$sarif")
  out findings "$n"
  exit "$rc"
  ;;
*)
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
