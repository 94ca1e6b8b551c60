#!/usr/bin/env bash
# bench/report.py: goals computed from a run, a regression beyond the noise
# band fails (exit 1), figures within it pass, the report and plots exist.
# usage: test_bench_report.sh path/to/report.py
set -u
R=${1:?usage: test_bench_report.sh path/to/report.py}
source "$(dirname "$0")/lib.sh"

run() { # run FILE P50_FULL OPS_GROUP100 [OPS_SQLITE_BATCH100]
  cat >"$1" <<JSON
{"date":"2026-11-22T00:00:00Z","kind":"quick","seconds":1,
 "machine":{"host":"h","cpu":"c","cores":2,"mem_mib":1,"kernel":"k"},
 "build":{"build":"b","sqlite":"3"},
 "results":[
  {"system":"raw","mode":"append+fdatasync","depth":0,"op":"append","n":10,"p50_us":300,"p90_us":1,"p99_us":1,"p999_us":1,"max_us":1,"ops_per_s":3000},
  {"system":"boxguard","mode":"full","depth":1000,"op":"enqueue","n":10,"p50_us":$2,"p90_us":1,"p99_us":400,"p999_us":500,"max_us":600,"ops_per_s":3000},
  {"system":"boxguard","mode":"full","depth":100000,"op":"enqueue","n":10,"p50_us":$2,"p90_us":1,"p99_us":400,"p999_us":500,"max_us":600,"ops_per_s":3000},
  {"system":"sqlite","mode":"FULL","depth":100000,"op":"enqueue","n":10,"p50_us":900,"p90_us":1,"p99_us":1,"p999_us":5000,"max_us":1,"ops_per_s":1000},
  {"system":"boxguard","mode":"group100","depth":1000,"op":"enqueue","n":10,"p50_us":5,"p90_us":1,"p99_us":9,"p999_us":1,"max_us":1,"ops_per_s":$3},
  {"system":"sqlite","mode":"FULL/batch100","depth":1000,"op":"enqueue","n":10,"p50_us":2,"p90_us":1,"p99_us":1,"p999_us":1,"max_us":1,"ops_per_s":${4:-10000}}
 ],
 "reopen":{"pending":1000,"open_us":2000,"sequential_read_us":1000,"open_over_read":2.0,"rss_kib":3000,"empty_rss_kib":2900,"bytes_per_pending_op":40}}
JSON
}
run "$T/base.json" 250 40000
run "$T/same.json" 260 39000
run "$T/slow.json" 900 39000
run "$T/thin.json" 250 9000
python3 "$R" --out "$T/o1" --baseline "$T/base.json" "$T/same.json" >"$T/out" 2>&1
check "within the band passes" -- test $? -eq 0
check "goals counted" -- grep -q "goals met" "$T/out"
check "report written" -- test -s "$T/o1/report.md"
check "goal table" -- grep -q "durable enqueue p50 vs raw append+fdatasync p50 | 0.867 | <= 1.0x | yes" "$T/o1/report.md"
check "group throughput goal" -- grep -q "group (100 per sync) enqueue throughput vs SQLite batched 100 | 3.9 | >= 3x | yes" "$T/o1/report.md"
check "plot drawn" -- test -s "$T/o1/latency-enqueue.png"
python3 "$R" --out "$T/o2" --baseline "$T/base.json" "$T/slow.json" >"$T/out" 2>&1
check "a slower p50 fails" -- test $? -eq 1
check "regression named" -- grep -q "REGRESSION boxguard full depth 1000 enqueue p50_us: 3.60x worse" "$T/out"
python3 "$R" --out "$T/o3" --baseline "$T/base.json" "$T/thin.json" >"$T/out" 2>&1
check "a lower throughput fails" -- test $? -eq 1
check "unmet goal reported" -- grep -q "group (100 per sync) enqueue throughput vs SQLite batched 100 | 0.9 | >= 3x | \*\*no\*\*" "$T/o3/report.md"
# A slower machine slows the reference too: not a regression of ours.
run "$T/busy.json" 250 15000 3750
python3 "$R" --out "$T/o4" --baseline "$T/base.json" "$T/busy.json" >"$T/out" 2>&1
check "a machine-wide slowdown is not a regression" -- test $? -eq 0
cat >"$T/hfb.json" <<'JSON'
{"results":[{"command":"backup create 100000","mean":0.5,"median":0.4},
 {"command":"backup restore 100000","mean":0.3,"median":0.25},
 {"command":"tar --zstd 100000","mean":0.1,"median":0.1}]}
JSON
python3 "$R" --out "$T/o5" --baseline "$T/base.json" --backups "$T/hfb.json" "$T/same.json" >"$T/out" 2>&1
check "the backups table: medians, records per second, ratios to tar" -- grep -qF "| 100000 | 0.400 | 250000 | 0.250 | 400000 | 0.100 | 4.00x | 2.50x |" "$T/o5/report.md"
finish "bench report"
