#!/usr/bin/env bash
# bench/icount.py, the instruction-count gate: a path over the band
# fails (exit 1) and is named; within it passes; faster than the band asks
# for a baseline update; a baseline of another build, or none, is reported
# and not compared.
# usage: test_icount_report.sh path/to/icount.py
set -u
PY=${1:?usage}
source "$(dirname "$0")/lib.sh"

cat >"$T/base.json" <<'J'
{"build": "12.2.0 x86_64", "paths": {"record_check": 10000, "enqueue_off": 20000}}
J
mk() { printf '{"build": "%s", "paths": {"record_check": %s, "enqueue_off": %s}}\n' "$1" "$2" "$3" >"$T/cur.json"; }

mk "12.2.0 x86_64" 10200 20000
expect 0 "2.0% over: within the band" -- python3 "$PY" "$T/cur.json" "$T/base.json" "$T/r.md"
check "ok in the report" -- grep -q '^| record_check | 10000 | 10200 | +2.00% | ok |$' "$T/r.md"
mk "12.2.0 x86_64" 10201 20000
expect 1 "2.01% over: a regression" -- python3 "$PY" "$T/cur.json" "$T/base.json" "$T/r.md"
check "named with its counts" -- has "icount: REGRESSION record_check: 10000 -> 10201 instructions per op (+2.01%, band 2.0%)"
check "in the report" -- grep -q 'record_check.*\*\*regressed\*\*' "$T/r.md"
check "the other path ok" -- grep -q '^| enqueue_off | 20000 | 20000 | +0.00% | ok |$' "$T/r.md"
mk "12.2.0 x86_64" 10000 15000
expect 0 "faster: passes" -- python3 "$PY" "$T/cur.json" "$T/base.json" "$T/r.md"
check "asks for a baseline update" -- grep -q 'enqueue_off.*faster: update the baseline' "$T/r.md"
mk "13.1.0 x86_64" 99999 99999
expect 0 "another compiler: not compared" -- python3 "$PY" "$T/cur.json" "$T/base.json" "$T/r.md"
check "says so" -- grep -q 'of another build (12.2.0 x86_64): reported, not compared' "$T/r.md"
expect 0 "no baseline" -- python3 "$PY" "$T/cur.json" "$T/none.json" "$T/r.md"
check "says so" -- grep -q 'No baseline' "$T/r.md"
mk "12.2.0 x86_64" 10500 20000
expect 0 "a wider band given" -- python3 "$PY" "$T/cur.json" "$T/base.json" "$T/r.md" --band 0.06
expect 2 "bad usage" -- python3 "$PY" "$T/cur.json"

finish "icount report"
