#!/usr/bin/env bash
# The boxguard command: usage, exit codes, dump/load round trip, load all or
# nothing, read-only verify, torn-tail cutting, recovery, the store lock.
# usage: test_cli.sh path/to/boxguard
set -u
BG=${1:?usage: test_cli.sh path/to/boxguard}
source "$(dirname "$0")/lib.sh"

S=$T/store
cat >"$T/adapters.json" <<'JSON'
{"adapters": [
  {"typeId": 7, "name": "User", "version": 1,
   "fields": [{"name": "name", "type": "string", "required": true},
              {"name": "score", "type": "number"}]},
  {"typeId": 3, "name": "Note", "version": 1}
]}
JSON
A=(--adapters "$T/adapters.json")
expect 0 "help" -- "$BG" --help
check "help lists commands" -- grep -q "recover --store DIR" "$T/out"
check "help lists queue and typeids" -- bash -c "grep -q '  boxguard queue   enqueue' '$T/out' && grep -q '  boxguard typeids check' '$T/out' && grep -q '  boxguard rekey   --store' '$T/out'"
expect 2 "no command" -- "$BG"
expect 2 "unknown command" -- "$BG" frobnicate --store "$S"
check "unknown command named" -- grep -q "unknown command 'frobnicate'" "$T/err"
expect 2 "missing --store" -- "$BG" get --box b --key k
expect 2 "missing --key" -- "$BG" put --store "$S" --box b --type 1 --json 1
check "missing --key named" -- grep -q "put needs --key (see boxguard put --help)" "$T/err"
expect 2 "missing --type" -- "$BG" put --store "$S" --box b --key k --json 1
check "missing --type named" -- grep -q "put needs --type" "$T/err"
for c in get del dump load compact; do
  expect 2 "$c without --box" -- "$BG" "$c" --store "$S" --key k
  check "$c names the missing --box" -- grep -q "$c needs --box" "$T/err"
done
check "nothing created by refused commands" -- test ! -e "$S"
expect 2 "bad --type" -- "$BG" put --store "$S" --box b --key k --type -1 --json 1
expect 2 "bad option" -- "$BG" put --store "$S" --bogus
expect 1 "read of a missing store" -- "$BG" get --store "$S" --box b --key k
check "missing store named" -- grep -q "store '$S' does not exist" "$T/err"
check "reads create nothing" -- test ! -e "$S"

expect 0 "put creates the store" -- "$BG" put "${A[@]}" --store "$S" --box users --key u1 --type 7 --json '{"name":"Ann","score":1.50}'
expect 0 "put from stdin" -- bash -c "printf '[1,2,3]\n' | '$BG' put --store '$S' --box users --key u2 --type 0"
expect 0 "get" -- "$BG" get --store "$S" --box users --key u1
check "get prints the exact bytes" -- test "$(cat "$T/out")" = '{"name":"Ann","score":1.50}'
expect 0 "get stdin value" -- "$BG" get --store "$S" --box users --key u2
check "stdin newline dropped" -- test "$(cat "$T/out")" = '[1,2,3]'
expect 1 "get missing key" -- "$BG" get --store "$S" --box users --key nobody
check "missing key named" -- grep -q "no key 'nobody'" "$T/err"
expect 1 "get missing box" -- "$BG" get --store "$S" --box nobox --key k
expect 2 "malformed JSON refused" -- "$BG" put --store "$S" --box users --key u3 --type 1 --json '{"a":}'
check "JSON error names key and byte" -- grep -q "key 'u3': malformed JSON at byte" "$T/err"
expect 2 "bad box name" -- "$BG" put --store "$S" --box "a/b" --key k --type 1 --json 1
expect 0 "del" -- "$BG" del --store "$S" --box users --key u2
expect 1 "del again" -- "$BG" del --store "$S" --box users --key u2

# dump and load round trip, exact bytes.
"$BG" put "${A[@]}" --store "$S" --box users --key 'caf\u00e9 "q"' --type 3 --json '{"s":"line\nbreak", "n":-0.0e+1}' 2>/dev/null
expect 0 "dump" -- "$BG" dump --store "$S" --box users
cp "$T/out" "$T/dump1"
check "dump has one line per record" -- test "$(wc -l <"$T/dump1")" -eq 2
check "dump line format" -- grep -qx '{"key":"u1","type":7,"value":{"name":"Ann","score":1.50}}' "$T/dump1"
expect 0 "load" -- bash -c "'$BG' load --store '$S' --box copy < '$T/dump1'"
expect 0 "dump copy" -- "$BG" dump --store "$S" --box copy
check "load round-trips dump byte for byte" -- cmp -s "$T/dump1" "$T/out"

# load is all or nothing.
printf '%s\n' '{"key":"a","type":1,"value":1}' '{"key":"b","type":1,"value":[1,}' >"$T/bad.jsonl"
expect 2 "load with a bad line" -- bash -c "'$BG' load --store '$S' --box partial < '$T/bad.jsonl'"
check "bad line named" -- grep -q "stdin line 2" "$T/err"
expect 1 "nothing loaded" -- "$BG" get --store "$S" --box partial --key a
printf '%s\n' '{"key":"a","type":1,"value":1}' '{"key":"b","type":1,"value":{"x":}}' >"$T/bad2.jsonl"
expect 2 "load with a bad value" -- bash -c "'$BG' load --store '$S' --box copy < '$T/bad2.jsonl'"
expect 1 "copy unchanged" -- "$BG" get --store "$S" --box copy --key a
printf '%s\n' '{"key":"a","type":1}' >"$T/bad3.jsonl"
expect 2 "load missing value" -- bash -c "'$BG' load --store '$S' --box copy < '$T/bad3.jsonl'"
check "missing member named" -- grep -q 'missing "value"' "$T/err"

# verify is read-only and reports damage with exit 1.
expect 0 "verify clean" -- "$BG" verify --store "$S"
sum_before=$(cat "$S"/*.box | sha256sum)
size=$(stat -c %s "$S/users.box")
head -c $((size - 7)) "$S/users.box" >"$T/torn" && cp "$T/torn" "$S/users.box"
sum_torn=$(cat "$S"/*.box | sha256sum)
expect 1 "verify finds a torn tail" -- "$BG" verify --store "$S"
check "torn tail reported" -- grep -q "box 'users': torn tail" "$T/out"
expect 1 "verify --json" -- "$BG" verify --store "$S" --box users --json
check "json status" -- grep -q '"status":"torn"' "$T/out"
expect 0 "dump of a torn box (read-only)" -- "$BG" dump --store "$S" --box users
check "the read warns of the torn tail" -- grep -q "warning: box 'users' has a torn tail of [0-9]* bytes at offset" "$T/err"
check "with the command to run, on the real path" -- grep -qF "\`boxguard recover --store $S --box users\` cuts it" "$T/err"
expect 0 "get of a torn box warns too" -- "$BG" get --store "$S" --box users --key u1
check "get warns" -- grep -q "warning: box 'users' has a torn tail" "$T/err"
check "verify and dump changed no byte" -- test "$(cat "$S"/*.box | sha256sum)" = "$sum_torn"
check "sums differ from the original" -- test "$sum_torn" != "$sum_before"
expect 0 "a writing open cuts the tail" -- "$BG" put --store "$S" --box users --key u9 --type 0 --json true
check "and says so" -- grep -q "cut a torn tail" "$T/err"
expect 0 "verify clean after the cut" -- "$BG" verify --store "$S" --box users

# A synced batch whose first frame is damaged since: the file alone cannot
# tell it from a batch a crash cut short, so the tail is cut, but never
# unseen: verify calls it damage, reads warn, and the writing open keeps the
# cut bytes, byte for byte, in quarantine/ and names the copy.
D=$T/dmg
"$BG" put --store "$D" --box b --key k0 --type 0 --json 0 2>/dev/null
s1=$(stat -c %s "$D/b.box")
printf '{"key":"k1","type":0,"value":11}\n{"key":"k2","type":0,"value":22}\n{"key":"k3","type":0,"value":33}\n' >"$T/batch"
expect 0 "load writes one batch" -- bash -c "'$BG' load --store '$D' --box b <'$T/batch'"
s2=$(stat -c %s "$D/b.box")
flen=$(((s2 - s1) / 3))
printf 'Z' | dd of="$D/b.box" bs=1 seek=$((s1 + flen - 1)) conv=notrunc 2>/dev/null
tail -c +$((s1 + 1)) "$D/b.box" >"$T/tail"
expect 1 "verify of a damaged batch tail" -- "$BG" verify --store "$D" --box b
check "verify calls it damage, not a torn write" -- grep -qF "box 'b': DAMAGED tail: $((s2 - s1)) bytes at offset $s1 to cut; 2 frame(s) in it verify" "$T/out"
check "and names the command that keeps it" -- grep -qF "run \`boxguard recover --store $D --box b\`: it keeps a copy of the tail in quarantine/" "$T/out"
expect 1 "verify --json of it" -- "$BG" verify --store "$D" --box b --json
check "json status damaged_tail" -- grep -q '"status":"damaged_tail"' "$T/out"
expect 0 "a read warns of the damaged tail" -- "$BG" dump --store "$D" --box b
check "the warning says frames verify" -- grep -qF "warning: box 'b' has a damaged tail of $((s2 - s1)) bytes at offset $s1, not read: 2 frame(s) of it verify" "$T/err"
check "the read shows the records before it" -- test "$(cat "$T/out")" = '{"key":"k0","type":0,"value":0}'
check "verify and dump cut nothing" -- test "$(stat -c %s "$D/b.box")" -eq "$s2"
check "nor made a copy" -- test ! -e "$D/quarantine"
expect 0 "a writing open cuts it" -- "$BG" put --store "$D" --box b --key k4 --type 0 --json 4
check "and names the copy" -- grep -qE "box 'b': cut a damaged tail of $((s2 - s1)) bytes at offset $s1: 2 frame\(s\) of it verify .*; copied to $D/quarantine/b_torn_[0-9]{8}\.bak" "$T/err"
check "the copy holds the cut bytes exactly" -- cmp "$T/tail" "$D"/quarantine/b_torn_*.bak
expect 0 "the box reads k0 and k4" -- "$BG" dump --store "$D" --box b
check "k0 and k4 only" -- test "$(cut -c1-11 "$T/out" | tr '\n' ' ')" = '{"key":"k0" {"key":"k4" '
check "no warning once cut" -- test ! -s "$T/err"

# Mid-file damage: exit 4 for writes until recover.
printf 'X' | dd of="$S/users.box" bs=1 seek=70 conv=notrunc 2>/dev/null
"$BG" put --store "$S" --box users --key u10 --type 1 --json 1 >/dev/null 2>&1
expect 4 "write to a damaged box" -- "$BG" put --store "$S" --box users --key u10 --type 1 --json 1
check "damage named with offset" -- grep -q "box 'users' is damaged at offset 48" "$T/err"
expect 1 "verify finds corruption" -- "$BG" verify --store "$S" --box users
check "corruption reported" -- grep -q "CORRUPT" "$T/out"
check "the hint names the store" -- grep -qF "run \`boxguard recover --store $S --box users\`" "$T/out"
"$BG" dump --store "$S" --box users >/dev/null 2>"$T/derr"
check "a read of a damaged box says what it skips" -- grep -qE "skipping [0-9]+ damaged byte\(s\) in [0-9]+ range\(s\); run .boxguard recover --store $S --box users" "$T/derr"
expect 0 "recover" -- "$BG" recover --store "$S" --box users
check "quarantine copy" -- test -n "$(ls "$S"/quarantine/users_corrupted_*.bak)"
expect 0 "verify clean after recover" -- "$BG" verify --store "$S"
expect 0 "recover is idempotent" -- "$BG" recover --store "$S"
check "nothing to do" -- grep -q "nothing to do" "$T/out"
expect 0 "compact" -- "$BG" compact --store "$S" --box copy
expect 0 "stats" -- "$BG" stats --store "$S" --json
check "stats json" -- grep -q '"box":"copy","records":2' "$T/out"

# Adapters: writes must fit, reads need an adapter, the schema lock holds.
expect 2 "a record missing a required field" -- "$BG" put --store "$S" --box users --key u5 --type 7 --json '{"score":2}'
check "field named" -- grep -q "field 'name' is required by 'User' (typeId 7)" "$T/err"
expect 2 "a field of the wrong type" -- "$BG" put --store "$S" --box users --key u5 --type 7 --json '{"name":5}'
check "types named" -- grep -q "field 'name' must be string for 'User' (typeId 7), not integer" "$T/err"
expect 2 "a typeId with no adapter" -- "$BG" put --store "$S" --box users --key u5 --type 9 --json '{}'
check "typeId named" -- grep -q "typeId 9 has no adapter" "$T/err"
printf '%s' '{"adapters":[{"typeId":7,"name":"User"},{"typeId":7,"name":"Account"}]}' >"$T/collide.json"
expect 2 "two adapters on one typeId" -- "$BG" get --adapters "$T/collide.json" --store "$S" --box users --key u1
check "both named" -- grep -q "typeId 7 is taken by adapter 'User'.*cannot register 'Account'" "$T/err"
printf '%s' '{"adapters":[{"typeId":7,"name":"User"}]}' >"$T/dropped.json"
expect 2 "an adapter the store knows is gone" -- "$BG" get --adapters "$T/dropped.json" --store "$S" --box users --key u1
check "missing adapter named" -- grep -q "adapter 'Note' (typeId 3) is in the store's schema lock but is not registered" "$T/err"
printf '%s' '{"adapters":[{"typeId":7,"name":"Account"},{"typeId":3,"name":"Note"}]}' >"$T/renamed.json"
expect 2 "a typeId renamed" -- "$BG" put --adapters "$T/renamed.json" --store "$S" --box users --key u6 --type 0 --json 1
check "rename named" -- grep -q "typeId 7 is registered as 'Account' but the store knows it as 'User'" "$T/err"
expect 2 "box meta is reserved" -- "$BG" put --store "$S" --box meta --key k --type 0 --json 1
for own in meta audit failed_ops; do
  printf '{"key":"k","type":0,"value":1}\n' >"$T/own.jsonl"
  expect 2 "load into the store's box $own" -- sh -c '"$0" load --store "$1" --box "$2" <"$3"' "$BG" "$S" $own "$T/own.jsonl"
  check "load names the box $own" -- grep -q "box '$own' is reserved for the store itself" "$T/err"
  expect 2 "del in the store's box $own" -- "$BG" del --store "$S" --box $own --key k
  check "del names the box $own" -- grep -q "box '$own' is reserved for the store itself" "$T/err"
  expect 2 "compact of the store's box $own" -- "$BG" compact --store "$S" --box $own
  check "compact names the box $own" -- grep -q "box '$own' is reserved for the store itself" "$T/err"
done
expect 0 "a Note" -- "$BG" put --store "$S" --box notes --key n1 --type 3 --json '"hi"'
expect 0 "accept a changed schema" -- "$BG" put --adapters "$T/dropped.json" --accept-schema --store "$S" --box users --key u6 --type 0 --json 1
expect 2 "a record whose adapter is gone is not read" -- "$BG" get --store "$S" --box notes --key n1
check "read refusal names box, key, typeId" -- grep -q "box 'notes', key 'n1': typeId 3 has no adapter" "$T/err"
expect 0 "restore the adapters" -- "$BG" put "${A[@]}" --store "$S" --box users --key u6 --type 0 --json 1

# The store lock: a second writer is refused while one holds it.
if command -v flock >/dev/null; then
  expect 3 "locked store" -- flock "$S/store.lock" "$BG" put --store "$S" --box users --key z --type 1 --json 1
  check "lock named" -- grep -q "in use by another process" "$T/err"
fi

# Encryption: sealed values, a wrong key that changes nothing, rotation.
E=$T/enc
expect 0 "encrypted put" -- "$BG" put --store "$E" --box secrets --key s1 --type 0 --encrypt --json '{"pin":"4711-secret"}'
expect 0 "encrypted get" -- "$BG" get --store "$E" --box secrets --key s1
check "plaintext read back" -- test "$(cat "$T/out")" = '{"pin":"4711-secret"}'
check "no plaintext on disk" -- bash -c "! grep -q 4711-secret '$E/secrets.box'"
check "key file mode 0600" -- test "$(stat -c %a "$E/keys/1.key")" = 600
expect 2 "encrypt an existing plain box" -- "$BG" put --store "$S" --box users --key z --type 0 --encrypt --json 1
cp "$E/keys/1.key" "$T/key.orig"
head -c 32 /dev/urandom >"$E/keys/1.key"
sums() { find "$E" -type f -print0 | sort -z | xargs -0 sha256sum; }
before=$(sums)
expect 3 "wrong key: get" -- "$BG" get --store "$E" --box secrets --key s1
check "auth error named" -- grep -q "which the store does not have" "$T/err"
expect 3 "wrong key: put" -- "$BG" put --store "$E" --box secrets --key s2 --type 0 --json 2
expect 3 "wrong key: verify" -- "$BG" verify --store "$E"
expect 3 "wrong key: recover" -- "$BG" recover --store "$E"
check "wrong key changed no byte" -- test "$(sums)" = "$before"
cp "$T/key.orig" "$E/keys/1.key"
expect 0 "rekey" -- "$BG" rekey --store "$E"
check "rekey report" -- grep -q "rekeyed: 1 encrypted box under key" "$T/out"
check "old key gone, new key there" -- test ! -e "$E/keys/1.key" -a -e "$E/keys/2.key"
expect 0 "readable after rekey" -- "$BG" get --store "$E" --box secrets --key s1
check "same value" -- test "$(cat "$T/out")" = '{"pin":"4711-secret"}'

# The queue.
Q=$T/queue
expect 0 "enqueue" -- "$BG" queue enqueue --store "$Q" --idem save-1 --op '{"save":1}'
check "enqueue prints the id" -- test "$(cat "$T/out")" = 1
expect 0 "verify of the queue's box" -- "$BG" verify --store "$Q" --box pending_ops --json
check "the zeroed room ahead of its frame is the clean end" -- grep -q '"status":"clean","file_size":[0-9]*,"frames":1,"header_ok":true,"zeroed":[1-9][0-9]*' "$T/out"
expect 0 "enqueue from stdin, emergency" -- bash -c "echo '{\"wipe\":true}' | '$BG' queue enqueue --store '$Q' --idem wipe --lane emergency"
expect 1 "duplicate idempotency key" -- "$BG" queue enqueue --store "$Q" --idem save-1 --op '{"save":1}'
check "duplicate said" -- grep -q "duplicate: 'save-1' is already pending as 1" "$T/out"
expect 0 "lease serves emergency first" -- "$BG" queue lease --store "$Q" --json
check "lease json" -- grep -q '"id":2,"idem":"wipe","lane":"emergency"' "$T/out"
expect 0 "ack" -- "$BG" queue ack --store "$Q" --id 2
expect 1 "ack again" -- "$BG" queue ack --store "$Q" --id 2
expect 0 "nack 1" -- "$BG" queue nack --store "$Q" --id 1 --error "HTTP 503" --max-attempts 2
expect 0 "nack 2 moves to failed" -- "$BG" queue nack --store "$Q" --id 1 --error "HTTP 503" --max-attempts 2
check "moved said" -- grep -q "moved to failed_ops" "$T/out"
expect 0 "failed list" -- "$BG" queue failed --store "$Q" --json
check "failed op listed with its error" -- grep -q '"last_error":"HTTP 503"' "$T/out"
expect 0 "retry" -- "$BG" queue retry --store "$Q" --idem save-1 --json
check "retry json" -- grep -q '^{"id":3}$' "$T/out"
expect 1 "duplicate in json" -- "$BG" queue enqueue --store "$Q" --idem save-1 --op 1 --json
check "duplicate json" -- grep -q '"duplicate":true' "$T/out"
expect 0 "stats" -- "$BG" queue stats --store "$Q" --json
check "stats json" -- grep -q '"pending":1,"emergency":0,"normal":1,"leased":0,"failed":0' "$T/out"
expect 0 "rebuild-index" -- "$BG" queue rebuild-index --store "$Q"
expect 0 "compact" -- "$BG" queue compact --store "$Q"
expect 0 "stats after compact" -- "$BG" queue stats --store "$Q" --json
check "nothing lost by compaction" -- grep -q '"pending":1,' "$T/out"
expect 0 "lock" -- "$BG" queue lock --store "$Q" --owner w1
expect 3 "lock held by another" -- "$BG" queue lock --store "$Q" --owner w2
check "holder named" -- grep -q "locked by 'w1'" "$T/err"
expect 0 "release" -- "$BG" queue lock --store "$Q" --owner w1 --release
expect 2 "enqueue of bad JSON" -- "$BG" queue enqueue --store "$Q" --idem x --op '{'
expect 2 "queue usage" -- "$BG" queue frob --store "$Q"
expect 2 "ack needs an id" -- "$BG" queue ack --store "$Q"

# Leases across processes: each command below is a process of its own.
L=$T/leases
expect 0 "enqueue a" -- "$BG" queue enqueue --store "$L" --idem a --op '{"n":1}'
expect 0 "enqueue b" -- "$BG" queue enqueue --store "$L" --idem b --op '{"n":2}'
expect 0 "one process leases a and exits" -- "$BG" queue lease --store "$L" --json
check "a leased for 30 s" -- grep -q '"id":1,"idem":"a",.*"lease_until_ms":' "$T/out"
check "one lease record" -- test "$(stat -c %s "$L/pending_ops.leases")" = 40
expect 0 "the next process gets b" -- "$BG" queue lease --store "$L"
check "b handed out, not a" -- grep -q '^2 normal b ' "$T/out"
expect 1 "nothing left to lease" -- "$BG" queue lease --store "$L"
check "said so" -- grep -q "no op to lease" "$T/err"
expect 0 "stats count the leases held" -- "$BG" queue stats --store "$L" --json
check "two leased" -- grep -q '"pending":2,.*"leased":2,' "$T/out"
expect 0 "stats in text" -- "$BG" queue stats --store "$L"
check "leased in text" -- grep -q "leased 2," "$T/out"
expect 0 "a nack ends a's lease" -- "$BG" queue nack --store "$L" --id 1 --error "HTTP 503"
expect 0 "a comes back at once" -- "$BG" queue lease --store "$L" --lease-seconds 1
check "a again, one attempt" -- grep -q '^1 normal a attempts=1 ' "$T/out"
expect 1 "held for its second" -- "$BG" queue lease --store "$L"
sleep 1.2
expect 0 "after the lease runs out a comes back" -- "$BG" queue lease --store "$L" --json
check "a once more" -- grep -q '"id":1,"idem":"a"' "$T/out"
expect 2 "lease seconds out of range" -- "$BG" queue lease --store "$L" --lease-seconds 0
check "range said" -- grep -q "1..43200" "$T/err"
expect 2 "lease seconds on another command" -- "$BG" queue ack --store "$L" --id 2 --lease-seconds 5
expect 0 "b still pending after the refusals" -- "$BG" queue stats --store "$L" --json
check "two pending" -- grep -q '"pending":2,' "$T/out"

# Startup validation.
expect 0 "validate ready" -- "$BG" validate --store "$Q" --schema-version 1
check "ready said" -- grep -q "^ready (schema version 1)" "$T/out"
expect 1 "validate an older store" -- "$BG" validate --store "$Q" --schema-version 2 --json
check "needs_migration" -- grep -q '"status":"needs_migration"' "$T/out"
expect 1 "validate a missing store" -- "$BG" validate --store "$T/none"
check "blocked" -- grep -q "^blocked" "$T/out"

finish "cli"
