#!/usr/bin/env bash
# boxguard audit list|export: the records of what the engine did (a
# recovery with its ranges, a key rotation, a migration), their payloads
# redacted unless --no-redact, the export written whole, and the errors.
# usage: test_audit_cli.sh path/to/boxguard
set -u
BG=${1:?usage: test_audit_cli.sh path/to/boxguard}
source "$(dirname "$0")/lib.sh"

S=$T/s
"$BG" put --store "$S" --box users --key u1 --type 0 --json '"ann"' 2>/dev/null
"$BG" put --store "$S" --box users --key u2 --type 0 --json '"bob"' 2>/dev/null
"$BG" put --store "$S" --box vault --key v --type 0 --json '"x"' --encrypt 2>/dev/null
printf 'Z' | dd of="$S/users.box" bs=1 seek=60 conv=notrunc 2>/dev/null
expect 0 "recover the damage" -- "$BG" recover --store "$S" --box users
expect 0 "rekey" -- "$BG" rekey --store "$S"
printf '{"migrations":[{"id":"noop-1","from":1,"to":2,"boxes":["users"],"ops":[]}]}' >"$T/plan.json"
expect 0 "migrate" -- "$BG" migrate --store "$S" --plan "$T/plan.json"
snapshot() { (cd "$S" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(snapshot)

expect 0 "audit list" -- "$BG" audit list --store "$S"
check "three records" -- test "$(grep -c '^[0-9]\{4\}-' "$T/out")" -eq 3
check "the recovery" -- grep -qE '^[0-9-]{10}T[0-9:]{8}Z  corruption_recovery ' "$T/out"
check "the rotation" -- grep -qF "key_rotation" "$T/out"
check "the migration" -- grep -qF "  migration " "$T/out"
check "redacted by default" -- test "$(grep -c '{"redacted":true}' "$T/out")" -eq 3
check "no box name shown" -- bash -c "! grep -qF users '$T/out'"
expect 0 "audit list --no-redact --json" -- "$BG" audit list --store "$S" --no-redact --json
check "a JSON array of three" -- test "$(grep -o '"event":' "$T/out" | wc -l)" -eq 3
check "the box and the ranges lost" -- grep -qF '"payload":{"box":"users","damage":"corrupt","lost_bytes":' "$T/out"
check "the ranges" -- grep -qE '"ranges":\[\[48,[0-9]+\]\]' "$T/out"
check "the copy kept" -- grep -qF "\"quarantine\":\"$S/quarantine/users_corrupted_" "$T/out"
check "the key rotation's counts" -- grep -qF '"boxes":1,"resealed":1,"keys_removed":1' "$T/out"

expect 0 "audit export" -- "$BG" audit export --store "$S" --out "$T/a.jsonl"
check "says how many" -- grep -qF "exported 3 audit records to $T/a.jsonl (payloads redacted)" "$T/out"
check "three lines" -- test "$(wc -l <"$T/a.jsonl")" -eq 3
check "each redacted" -- test "$(grep -c ',"payload":{"redacted":true}}$' "$T/a.jsonl")" -eq 3
check "each with key, at and event" -- test "$(grep -c '^{"key":"[0-9a-f]\{16\}-[0-9a-f]\{8\}-[a-z0-9-]*","at":[0-9]*,"event":"[a-z_]*",' "$T/a.jsonl")" -eq 3
check "no temporary file left" -- test ! -e "$T/a.jsonl.tmp"
expect 0 "audit export --no-redact" -- "$BG" audit export --store "$S" --out "$T/full.jsonl" --no-redact
check "payloads kept" -- grep -qF '"payload":{"box":"users"' "$T/full.jsonl"
check "the store was only read" -- test "$(snapshot)" = "$before"

expect 2 "audit alone" -- "$BG" audit
expect 2 "an unknown subcommand" -- "$BG" audit frob --store "$S"
check "named" -- grep -qF "audit: unknown subcommand 'frob'" "$T/err"
expect 2 "export without --out" -- "$BG" audit export --store "$S"
check "says so" -- grep -qF "audit export needs --out FILE" "$T/err"
expect 2 "list with --out" -- "$BG" audit list --store "$S" --out "$T/x"
expect 2 "without --store" -- "$BG" audit list
expect 1 "a missing store" -- "$BG" audit list --store "$T/none"
check "does not exist" -- grep -qF "store '$T/none' does not exist" "$T/err"
check "nothing made" -- test ! -e "$T/none"
expect 3 "an export that cannot be written" -- "$BG" audit export --store "$S" --out "$T/no/dir/a.jsonl"
check "says what" -- grep -qF "cannot write the audit export '$T/no/dir/a.jsonl'" "$T/err"
check "the store untouched" -- test "$(snapshot)" = "$before"
expect 0 "audit --help" -- "$BG" audit --help
check "its own page" -- grep -qF "boxguard audit export --store DIR --out FILE" "$T/out"

finish "audit cli"
