#!/usr/bin/env bash
# boxguard backup: a store backed up, erased and restored is identical
# record for record; a wrong passphrase exits 3 with no other output; a
# damaged or cut backup exits 4 naming the chunk; a schema version refused
# exits 2; every refusal leaves the store byte for byte; usage errors.
# usage: test_backup_cli.sh path/to/boxguard
set -u
BG=${1:?usage: test_backup_cli.sh path/to/boxguard}
source "$(dirname "$0")/lib.sh"

S=$T/s
head -c 32 /dev/urandom >"$T/key"
printf 'a long passphrase\n' >"$T/pass"
printf 'another passphrase\n' >"$T/wrong"
cat >"$T/adapters.json" <<'JSON'
{"adapters":[{"typeId":7,"name":"User","version":1,
  "fields":[{"name":"name","type":"string","required":true}]}]}
JSON
"$BG" put --store "$S" --box users --key u1 --type 7 --json '{"name":"Ann"}' --adapters "$T/adapters.json" 2>/dev/null
printf '{"key":"n%d","type":0,"value":[%d,"x",{"a":null},true,1.5e3]}\n' $(seq 1 400 | awk '{print $1, $1}') |
  "$BG" load --store "$S" --box notes 2>/dev/null
"$BG" put --store "$S" --box vault --key v --type 0 --json '"secret"' --encrypt 2>/dev/null
"$BG" queue enqueue --store "$S" --idem i1 --op '{"op":"sync"}' >/dev/null
"$BG" queue enqueue --store "$S" --idem i2 --op '{"op":"sync2"}' >/dev/null
"$BG" queue lease --store "$S" >/dev/null
"$BG" queue nack --store "$S" --id 1 --error boom --max-attempts 1 >/dev/null
dumps() { for b in users notes vault pending_ops failed_ops meta; do echo "== $b"; "$BG" dump --store "$1" --box "$b" 2>/dev/null; done; }
dumps "$S" >"$T/before.dump"
check "the store has a failed op" -- grep -q '"boom"' "$T/before.dump"
snapshot() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

expect 0 "backup create" -- "$BG" backup create --store "$S" --out "$T/a.bgb" --passphrase-file "$T/pass" --json
check "every box" -- grep -qF '"name":"vault","records":1,"sealed":true' "$T/out"
check "no temporary file left" -- test ! -e "$T/a.bgb.tmp"
check "no record in the clear" -- bash -c "! grep -qaF Ann '$T/a.bgb' && ! grep -qaF secret '$T/a.bgb'"
expect 0 "backup verify" -- "$BG" backup verify --in "$T/a.bgb" --passphrase-file "$T/pass"
check "sound" -- grep -qF "sound: $T/a.bgb" "$T/out"
expect 0 "backup list" -- "$BG" backup list --in "$T/a.bgb" --passphrase-file "$T/pass"
check "lists the boxes" -- grep -qE '^  notes +400 records' "$T/out"

expect 3 "a wrong passphrase" -- "$BG" backup verify --in "$T/a.bgb" --passphrase-file "$T/wrong"
check "no other output" -- test ! -s "$T/out"
check "one line, the reason" -- test "$(cat "$T/err")" = "boxguard: wrong passphrase or key for this backup"
expect 3 "a raw key for a passphrase backup" -- "$BG" backup verify --in "$T/a.bgb" --key-file "$T/key"

before=$(snapshot "$S")
size=$(stat -c %s "$T/a.bgb")
head -c $((size - 1)) "$T/a.bgb" >"$T/cut.bgb"
expect 4 "a cut backup" -- "$BG" backup verify --in "$T/cut.bgb" --passphrase-file "$T/pass"
check "names the chunk" -- grep -qE "chunk [0-9]+ \(at byte [0-9]+\) does not authenticate" "$T/err"
cp "$T/a.bgb" "$T/flip.bgb"
printf 'Z' | dd of="$T/flip.bgb" bs=1 seek=200 conv=notrunc 2>/dev/null
expect 4 "restore of a damaged backup" -- "$BG" backup restore --store "$S" --in "$T/flip.bgb" --passphrase-file "$T/pass"
check "the store byte for byte" -- test "$(snapshot "$S")" = "$before"
expect 3 "restore with a wrong passphrase" -- "$BG" backup restore --store "$S" --in "$T/a.bgb" --passphrase-file "$T/wrong"
check "no other output" -- test ! -s "$T/out"
expect 2 "restore at another schema version" -- "$BG" backup restore --store "$S" --in "$T/a.bgb" --passphrase-file "$T/pass" --expect-schema 2
check "says which" -- grep -qF "schema version 1, not the expected 2" "$T/err"
check "the store byte for byte" -- test "$(snapshot "$S")" = "$before"
check "nothing beside it" -- test ! -e "$S.restore" -a ! -e "$S.restore-old"
expect 2 "restore of a backup newer than the app" -- "$BG" backup restore --store "$S" --in "$T/a.bgb" --passphrase-file "$T/pass" --schema-version 0
check "a version from 1" -- grep -qF -- "--schema-version must be a version from 1" "$T/err"
check "the store byte for byte" -- test "$(snapshot "$S")" = "$before"

# Backed up, erased, restored: the same, record for record.
expect 0 "erase" -- "$BG" erase --store "$S" --yes
check "gone" -- test ! -e "$S"
expect 0 "restore into the erased path" -- "$BG" backup restore --store "$S" --in "$T/a.bgb" --passphrase-file "$T/pass" --expect-schema 1 --json
check "counts restored" -- grep -qF '"restored_into":"'"$S"'"' "$T/out"
dumps "$S" >"$T/after.dump"
check "every box identical" -- cmp "$T/before.dump" "$T/after.dump"
expect 0 "validate ready" -- "$BG" validate --store "$S" --adapters "$T/adapters.json"
expect 0 "the sealed box is sealed again" -- "$BG" verify --store "$S" --box vault --json
check "a new key" -- test -e "$S/keys/1.key"
expect 0 "the queue goes on" -- "$BG" queue stats --store "$S" --json
check "its pending and failed ops" -- grep -qE '"pending":1.*"failed":1' "$T/out"
# Restored over a store that is there: replaced whole.
"$BG" put --store "$S" --box notes --key extra --type 0 --json 1 2>/dev/null
cp "$S/keys/1.key" "$T/store.key"
expect 0 "restore over a store" -- "$BG" backup restore --store "$S" --in "$T/a.bgb" --passphrase-file "$T/pass" --schema-version 1
check "sealed under the store's own key" -- cmp "$S/keys/1.key" "$T/store.key"
check "its only key" -- test "$(ls "$S/keys")" = "1.key"
dumps "$S" >"$T/again.dump"
check "the backup's, not the store's" -- cmp "$T/before.dump" "$T/again.dump"
check "the old one removed" -- test ! -e "$S.restore-old" -a ! -e "$S.restore"

# A damaged store: refused, unless --salvage keeps what verifies.
D=$T/d
"$BG" put --store "$D" --box b --key k1 --type 0 --json 1 2>/dev/null
"$BG" put --store "$D" --box b --key k2 --type 0 --json 2 2>/dev/null
"$BG" put --store "$D" --box b --key k3 --type 0 --json 3 2>/dev/null
printf 'Z' | dd of="$D/b.box" bs=1 seek=60 conv=notrunc 2>/dev/null
expect 4 "backup of a damaged store" -- "$BG" backup create --store "$D" --out "$T/d.bgb" --key-file "$T/key"
check "says to recover" -- grep -qF "recover it before a backup" "$T/err"
check "no file made" -- test ! -e "$T/d.bgb" -a ! -e "$T/d.bgb.tmp"
expect 0 "backup --salvage" -- "$BG" backup create --store "$D" --out "$T/d.bgb" --key-file "$T/key" --salvage --json
check "says what was lost" -- grep -qE '"lost_bytes":[1-9]' "$T/out"
check "the records that verify" -- grep -qF '"name":"b","records":2' "$T/out"
expect 0 "the salvaged backup restores" -- "$BG" backup restore --store "$T/dr" --in "$T/d.bgb" --key-file "$T/key"
expect 0 "with the two records" -- "$BG" dump --store "$T/dr" --box b
check "k2 and k3" -- test "$(cut -c1-11 "$T/out" | tr '\n' ' ')" = '{"key":"k2" {"key":"k3" '

# A backup newer than the app: refused before anything is touched.
M=$T/m
"$BG" put --store "$M" --box users --key u1 --type 0 --json 1 2>/dev/null
echo '{"migrations":[{"id":"bump","from":1,"to":2,"boxes":["users"],"ops":[]}]}' >"$T/bump.json"
expect 0 "migrate to schema 2" -- "$BG" migrate --store "$M" --plan "$T/bump.json"
expect 0 "back up at schema 2" -- "$BG" backup create --store "$M" --out "$T/m2.bgb" --key-file "$T/key"
mbefore=$(snapshot "$S")
expect 2 "restore of a backup newer than the app's schema" -- "$BG" backup restore --store "$S" --in "$T/m2.bgb" --key-file "$T/key" --schema-version 1
check "says to update the app" -- grep -qF "schema version 2, newer than the code's 1: update the app first" "$T/err"
check "the store byte for byte" -- test "$(snapshot "$S")" = "$mbefore"
check "nothing beside it" -- test ! -e "$S.restore" -a ! -e "$S.restore-old"
expect 0 "the app at 2 takes it" -- "$BG" backup restore --store "$T/m3" --in "$T/m2.bgb" --key-file "$T/key" --schema-version 2
expect 2 "--schema-version on verify" -- "$BG" backup verify --in "$T/m2.bgb" --key-file "$T/key" --schema-version 2

# A raw key, and usage.
expect 0 "a raw key" -- "$BG" backup create --store "$S" --out "$T/k.bgb" --key-file "$T/key"
expect 0 "verified with it" -- "$BG" backup verify --in "$T/k.bgb" --key-file "$T/key"
head -c 31 "$T/key" >"$T/short"
expect 2 "a key file of 31 bytes" -- "$BG" backup verify --in "$T/k.bgb" --key-file "$T/short"
check "says why" -- grep -qF "holds 31 bytes; a key is 32 raw bytes" "$T/err"
expect 2 "no key" -- "$BG" backup verify --in "$T/k.bgb"
expect 2 "both keys" -- "$BG" backup verify --in "$T/k.bgb" --key-file "$T/key" --passphrase-file "$T/pass"
expect 2 "a passphrase on the command line is no option" -- "$BG" backup verify --in "$T/k.bgb" --passphrase secret
expect 2 "an unknown subcommand" -- "$BG" backup frob
expect 2 "create without --out" -- "$BG" backup create --store "$S" --key-file "$T/key"
expect 1 "a backup that is not there" -- "$BG" backup verify --in "$T/none.bgb" --key-file "$T/key"
expect 1 "a key file that is not there" -- "$BG" backup verify --in "$T/k.bgb" --key-file "$T/nokey"
expect 1 "backup of a store that does not exist" -- "$BG" backup create --store "$T/nostore" --out "$T/x.bgb" --key-file "$T/key"
check "makes nothing" -- test ! -e "$T/nostore" -a ! -e "$T/x.bgb"
expect 0 "backup --help" -- "$BG" backup --help
check "its own page" -- grep -qF "boxguard backup restore --store DIR --in FILE KEY" "$T/out"

finish "backup cli"
