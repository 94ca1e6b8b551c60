#!/usr/bin/env bash
# The boxguard command's options and answers that test_cli.sh does not
# reach: durability modes, the queue's --json answers and its refusals,
# stats, typeids lock writing, validate and export option errors.
# usage: test_cli_options.sh path/to/boxguard
set -u
BG=${1:?usage: test_cli_options.sh path/to/boxguard}
source "$(dirname "$0")/lib.sh"

S=$T/store
expect 0 "version" -- "$BG" --version
check "version printed" -- grep -q "^boxguard " "$T/out"

# Durability modes: each writes; a bad one is refused and creates nothing.
for d in full group off; do
  expect 0 "put with --durability $d" -- "$BG" put --store "$S" --box b --key "k-$d" --type 0 --json "\"$d\"" --durability "$d"
done
expect 0 "the group write is there" -- "$BG" get --store "$S" --box b --key k-group
check "group value" -- test "$(cat "$T/out")" = '"group"'
expect 2 "bad durability" -- "$BG" put --store "$T/other" --box b --key k --type 0 --json 1 --durability sometimes
check "bad durability named" -- grep -q "durability must be full, group or off, not 'sometimes'" "$T/err"
check "bad durability creates nothing" -- test ! -e "$T/other"

# stats, as text and JSON.
expect 0 "stats" -- "$BG" stats --store "$S"
check "stats has a header and the box" -- bash -c "grep -q '^box ' '$T/out' && grep -q '^b ' '$T/out'"
expect 0 "stats --json" -- "$BG" stats --store "$S" --json
check "stats json names the box" -- grep -q '"b"' "$T/out"

# The queue: every answer in --json, and the refusals.
q() { local sub=$1; shift; "$BG" queue "$sub" --store "$S" "$@"; }
expect 0 "enqueue --json" -- q enqueue --idem a --op '{"x":1}' --json
check "enqueue json" -- grep -q '{"id":1,"duplicate":false}' "$T/out"
expect 1 "duplicate --json" -- q enqueue --idem a --op '{"x":1}' --json
check "duplicate json" -- grep -q '{"id":1,"duplicate":true}' "$T/out"
expect 0 "enqueue emergency" -- q enqueue --idem e --lane emergency --op '{"x":2}'
expect 2 "bad lane" -- q enqueue --idem z --lane fast --op 1
check "bad lane named" -- grep -q "lane must be normal or emergency, not 'fast'" "$T/err"
expect 2 "enqueue without --idem" -- q enqueue --op 1
check "missing --idem named" -- grep -q "queue enqueue needs --idem KEY" "$T/err"
expect 2 "lock without --owner" -- q lock
check "missing --owner named" -- grep -q "queue lock needs --owner NAME" "$T/err"
expect 2 "bad --max-attempts" -- q nack --id 1 --error x --max-attempts 0
check "bad max attempts named" -- grep -q "max-attempts must be 1..1000000" "$T/err"
expect 2 "queue without --store" -- "$BG" queue stats
check "queue needs --store" -- grep -q "queue stats needs --store DIR" "$T/err"
expect 0 "lease --json" -- q lease --json
check "emergency first" -- grep -q '"idem":"e"' "$T/out"
expect 0 "ack --json" -- q ack --id 2 --json
check "ack json" -- grep -q '{"acked":2}' "$T/out"
expect 0 "nack --json" -- q nack --id 1 --error "HTTP 500" --max-attempts 1 --json
check "nack json says failed" -- grep -q '{"id":1,"failed":true}' "$T/out"
expect 0 "failed --json" -- q failed --json
check "failed op listed with its error" -- grep -q 'HTTP 500' "$T/out"
expect 0 "purge --json" -- q purge --json
check "purge json" -- grep -q '"purged":0' "$T/out"
expect 0 "lock --json" -- q lock --owner w1 --json
check "lock json" -- grep -q '{"locked":true,"took_over_stale":false}' "$T/out"
expect 0 "lock release" -- q lock --owner w1 --release
expect 0 "retry" -- q retry --idem a
expect 0 "stats --json" -- q stats --json
check "one pending again" -- grep -q '"pending":1' "$T/out"
expect 0 "rebuild-index" -- q rebuild-index
expect 0 "compact" -- q compact

# typeids: writing the lock, then checking against it.
mkdir -p "$T/app/lib"
cat >"$T/app/lib/m.dart" <<'DART'
@HiveType(typeId: 1)
class User {}
void main() { Hive.registerAdapter(UserAdapter()); }
DART
expect 0 "typeids --update-lock" -- "$BG" typeids check --lock "$T/app.lock" --update-lock "$T/app"
check "lock written" -- grep -q '"name": "User"' "$T/app.lock"
expect 0 "typeids against its lock" -- "$BG" typeids check --lock "$T/app.lock" "$T/app"
sed -i 's/typeId: 1/typeId: 2/' "$T/app/lib/m.dart"
expect 1 "a moved typeId" -- "$BG" typeids check --lock "$T/app.lock" --format json "$T/app"
check "moved in json" -- grep -q '"moved"' "$T/out"
expect 2 "typeids on a missing path" -- "$BG" typeids check --lock "$T/app.lock" "$T/nowhere"

# validate and export option errors.
expect 2 "validate bad --schema-version" -- "$BG" validate --store "$S" --schema-version x
check "schema version named" -- grep -q "schema-version must be a positive integer, not 'x'" "$T/err"
expect 2 "export bad --chunk" -- "$BG" export-sqlite --store "$S" --db "$T/x.db" --chunk 0
check "chunk named" -- grep -q "chunk must be 1..10000000 rows, not '0'" "$T/err"
check "no database made" -- test ! -e "$T/x.db"
expect 2 "migrate status takes no --plan" -- "$BG" migrate status --store "$S" --plan "$T/p.json"
check "named" -- grep -q "migrate status takes no --plan, --adapters or --dry-run" "$T/err"

# load: every way a dump line can be wrong, named with its column; the box
# is left as it was (all or nothing).
L=$T/loadstore
expect 0 "a box to load into" -- "$BG" put --store "$L" --box b --key keep --type 0 --json 1
bad_line() {
  local what=$1 line=$2 says=$3
  expect 2 "load: $what" -- bash -c "printf '%s\n' '$line' | '$BG' load --store '$L' --box b"
  check "load: $what named" -- grep -qF -- "$says" "$T/err"
}
bad_line "no object" '[1]' "expected '{' at column 1"
bad_line "no member name" '{1:2}' "expected a member name at column 2"
bad_line "no colon" '{"key" "k"}' "expected ':' at column 8"
bad_line "bad value" '{"key":"k","type":0,"value":tru}' 'bad JSON value for "value"'
bad_line "repeated member" '{"key":"k","key":"j"}' 'unexpected or repeated member "key"'
bad_line "unknown member" '{"kee":"k"}' 'unexpected or repeated member "kee"'
bad_line "key not a string" '{"key":5,"type":0,"value":1}' '"key" must be a string'
bad_line "NUL in key" '{"key":"a\u0000b","type":0,"value":1}' '"key" must be a string without \u0000'
bad_line "type out of range" '{"key":"k","type":-1,"value":1}' '"type" must be an integer from 0 to 4294967295'
bad_line "no comma" '{"key":"k" "type":0}' "expected ',' or '}' at column"
bad_line "trailing data" '{"key":"k","type":0,"value":1} x' "trailing data at column"
bad_line "missing value" '{"key":"k","type":0}' 'missing "value"'
expect 0 "load kept nothing of the bad lines" -- "$BG" dump --store "$L" --box b
check "only the first record" -- test "$(wc -l <"$T/out")" -eq 1

# verify and recover of a box damaged in many places: every range up to
# the report's limit, then how many more; recover keeps the rest.
D=$T/damaged
# (one put each: a load writes one batch, whose damage is another matter)
for i in $(seq 0 39); do
  "$BG" put --store "$D" --box b --key "$(printf 'k%02d' "$i")" --type 0 --json "{\"i\":$i}" --durability off
done
check "40 records" -- test "$("$BG" dump --store "$D" --box b | wc -l)" -eq 40
python3 - "$D/b.box" <<'PY'
import sys
p = sys.argv[1]
f = bytearray(open(p, 'rb').read())
pos, n = 48, 0
while pos + 56 <= len(f):
    flen = int.from_bytes(f[pos + 4:pos + 8], 'little')
    if n % 2 == 0:
        f[pos + 50] ^= 0x01  # a byte of every other frame's key
    pos += flen
    n += 1
open(p, 'wb').write(bytes(f))
PY
expect 1 "verify a much-damaged box" -- "$BG" verify --store "$D" --box b
check "ranges past the limit counted" -- grep -q "and 4 more damaged ranges" "$T/out"
expect 1 "verify --json" -- "$BG" verify --store "$D" --box b --json
check "json counts every range" -- grep -q '"damaged_ranges":20' "$T/out"
expect 0 "recover" -- "$BG" recover --store "$D" --box b
check "recover names its quarantine copy" -- grep -q "quarantine/b_corrupted_" "$T/out"
expect 0 "dump after recover" -- "$BG" dump --store "$D" --box b
check "the 20 whole records kept" -- test "$(wc -l <"$T/out")" -eq 20

# Progress on a terminal (script(1) gives the command a pseudo-terminal):
# a load of many lines and a verify say how far they got.
P=$T/progress
for i in $(seq 0 9999); do printf '{"key":"p%05d","type":0,"value":%d}\n' "$i" "$i"; done >"$T/many"
expect 0 "load on a terminal" -- script -qec "'$BG' load --store '$P' --box b <'$T/many'" /dev/null
check "load progress shown" -- grep -q "load: parsed 10000 lines" "$T/out"
check "open progress shown" -- grep -q "open: 100%" "$T/out"
expect 0 "verify on a terminal" -- script -qec "'$BG' verify --store '$P'" /dev/null
check "verify answered" -- grep -q "box 'b': clean" "$T/out"

finish cli_options
