#!/usr/bin/env bash
# boxguard guard and boxguard metrics: exit codes by --fail-on, the policy
# file and its errors, --adapters and --schema-version, the JSON report,
# read-only (not a byte of the store changes), and metrics in the
# Prometheus text exposition format.
# usage: test_guard_cli.sh path/to/boxguard
set -u
BG=${1:?usage: test_guard_cli.sh path/to/boxguard}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"

S=$T/store
snapshot() { (cd "$1" && find . -type f | sort | xargs sha256sum); }
"$BG" put --store "$S" --box notes --key n1 --type 0 --json '{"t":1}' >/dev/null 2>&1
"$BG" put --store "$S" --box vault --key k --type 0 --json 1 --encrypt >/dev/null 2>&1
"$BG" queue enqueue --store "$S" --idem a --op '{"a":1}' >/dev/null
"$BG" queue enqueue --store "$S" --idem b --op '{"b":1}' >/dev/null

before=$(snapshot "$S")
expect 0 "a healthy store" -- "$BG" guard --store "$S"
check "every invariant listed" -- test "$(grep -cE '^(ok|warning|critical) ' "$T/out")" -eq 7
check "the verdict" -- has "guard: ok"
check "read-only: not a byte changed" -- test "$(snapshot "$S")" = "$before"

# A processing lock: a warning once stale; --fail-on decides the exit.
"$BG" queue lock --store "$S" --owner worker-1 >/dev/null
echo '{"lock_stale_seconds": 1}' >"$T/p1.json"
sleep 2
expect 0 "a stale lock is a warning: passes at --fail-on critical" -- "$BG" guard --store "$S" --policy "$T/p1.json"
check "named" -- grep -qE "^warning  processing_lock +the processing lock is held by 'worker-1'" "$T/out"
check "with its action" -- has "action: the owner has likely died"
check "the verdict" -- has "guard: warning"
expect 1 "and fails at --fail-on warning" -- "$BG" guard --store "$S" --policy "$T/p1.json" --fail-on warning
expect 0 "within the default 2 minutes it holds" -- "$BG" guard --store "$S" --fail-on warning

# A sensitive box not sealed: critical.
echo '{"sensitive_boxes": ["vault", "notes"]}' >"$T/p2.json"
expect 1 "an unsealed sensitive box" -- "$BG" guard --store "$S" --policy "$T/p2.json"
check "which box" -- has "'notes' (not sealed)"
check "the vault passes" -- bash -c "! grep -q \"'vault'\" '$T/out'"
expect 1 "the JSON report" -- "$BG" guard --store "$S" --policy "$T/p2.json" --json
check "status critical" -- grep -q '"status":"critical"' "$T/out"
check "the invariant with measured, bound and action" -- grep -q '"name":"encryption_policy","severity":"critical","measured":1,"bound":0' "$T/out"

# Failed ops over the bound: a warning.
"$BG" queue lease --store "$S" >/dev/null
"$BG" queue nack --store "$S" --id 1 --error 400 --max-attempts 1 >/dev/null
echo '{"failed_max": 0}' >"$T/p3.json"
expect 1 "one failed op over a bound of 0, at --fail-on warning" -- "$BG" guard --store "$S" --policy "$T/p3.json" --fail-on warning
check "failed_ops" -- grep -qE "^warning  failed_ops +1 failed ops \(bound 0\)" "$T/out"
echo '{"failed_max": 1}' >"$T/p4.json"
expect 0 "at the bound it holds" -- "$BG" guard --store "$S" --policy "$T/p4.json" --fail-on warning

# The schema version and the adapters.
expect 1 "the code older than the store" -- bash -c "'$BG' migrate --store '$S' --plan /dev/stdin <<<'{\"migrations\":[{\"id\":\"m\",\"from\":1,\"to\":2,\"boxes\":[\"notes\"],\"ops\":[]}]}' >/dev/null && '$BG' guard --store '$S' --schema-version 1"
check "critical: never downgrade" -- has "newer than the code's 1"
expect 0 "the store older than the code: a warning" -- "$BG" guard --store "$S" --schema-version 3
check "older than the code's" -- grep -qE "^warning  schema_version" "$T/out"
expect 0 "at the code's version" -- "$BG" guard --store "$S" --schema-version 2 --fail-on warning --policy "$T/p4.json"
echo '{"adapters":[{"typeId":1,"name":"Note","version":1}]}' >"$T/a.json"
echo '{"adapters":[{"typeId":1,"name":"Memo","version":1}]}' >"$T/renamed.json"
"$BG" put --store "$T/typed" --box n --key k --type 1 --json '{}' --adapters "$T/a.json" >/dev/null 2>&1
expect 0 "the adapters of the schema lock" -- "$BG" guard --store "$T/typed" --adapters "$T/a.json"
check "agree" -- has "the adapters agree with the schema lock"
expect 1 "a typeId renamed in the code" -- "$BG" guard --store "$T/typed" --adapters "$T/renamed.json"
check "critical, against the lock" -- grep -qE "^critical adapters +1 finding against the schema lock" "$T/out"

echo '{"failed_max": "20"}' >"$T/bad.json"

# Metrics: the exposition format.
expect 0 "metrics" -- "$BG" metrics --store "$S" --policy "$T/p1.json"
cp "$T/out" "$T/metrics.prom"
check "valid exposition text" -- python3 "$HERE/prom_check.py" "$T/metrics.prom"
check "pending by lane" -- grep -q '^boxguard_queue_pending_ops{lane="normal"} 1$' "$T/metrics.prom"
check "failed" -- grep -q '^boxguard_queue_failed_ops 1$' "$T/metrics.prom"
check "box sizes" -- grep -qE '^boxguard_box_file_bytes\{box="notes"\} [1-9][0-9]*$' "$T/metrics.prom"
check "schema version" -- grep -q '^boxguard_schema_version 2$' "$T/metrics.prom"
check "the last migration's duration" -- grep -qE '^boxguard_last_migration_duration_seconds [0-9]+\.[0-9]{3}$' "$T/metrics.prom"
check "guard violations under the policy (the stale lock)" -- grep -q '^boxguard_guard_violations{severity="warning"} 1$' "$T/metrics.prom"
check "none critical" -- grep -q '^boxguard_guard_violations{severity="critical"} 0$' "$T/metrics.prom"
expect 2 "metrics with a bad policy" -- "$BG" metrics --store "$S" --policy "$T/bad.json"
before=$(snapshot "$S")
"$BG" metrics --store "$S" >/dev/null
"$BG" guard --store "$S" >/dev/null
check "metrics and guard change nothing" -- test "$(snapshot "$S")" = "$before"

# A store with no queue, and usage errors.
"$BG" put --store "$T/plain" --box b --key k --type 0 --json 1 >/dev/null 2>&1
expect 0 "no queue: its invariants hold" -- "$BG" guard --store "$T/plain"
check "said" -- has "the store has no queue"
check "and none was made" -- test ! -e "$T/plain/pending_ops.box"
expect 0 "metrics of a store with no queue" -- "$BG" metrics --store "$T/plain"
check "zero pending" -- grep -q '^boxguard_queue_pending_ops{lane="normal"} 0$' "$T/out"
check "no migration yet: no duration" -- bash -c "! grep -q last_migration '$T/out'"
expect 1 "guard of a missing store" -- "$BG" guard --store "$T/none"
check "nothing made" -- test ! -e "$T/none"
expect 1 "metrics of a missing store" -- "$BG" metrics --store "$T/none"
expect 2 "no --store" -- "$BG" guard
expect 2 "a bad --fail-on" -- "$BG" guard --store "$S" --fail-on info
check "says what it takes" -- grep -q "fail-on must be critical or warning" "$T/err"
expect 2 "a bad policy" -- "$BG" guard --store "$S" --policy "$T/bad.json"
check "names the member" -- grep -q '"failed_max" must be a whole number from 0' "$T/err"
echo '{"sensitive": ["x"]}' >"$T/bad2.json"
expect 2 "an unknown policy member" -- "$BG" guard --store "$S" --policy "$T/bad2.json"
check "names it" -- grep -q 'unknown member "sensitive"' "$T/err"
expect 2 "a policy that is not there" -- "$BG" guard --store "$S" --policy "$T/nopolicy.json"
expect 2 "a bad --schema-version" -- "$BG" guard --store "$S" --schema-version 0
expect 0 "guard --help" -- "$BG" guard --help
check "documents the policy" -- has "emergency_blocked_seconds"
expect 0 "metrics --help" -- "$BG" metrics --help

finish "guard cli"
