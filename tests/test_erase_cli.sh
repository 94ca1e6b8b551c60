#!/usr/bin/env bash
# boxguard erase: refused without --yes and over files the store did not
# make (nothing changed, byte for byte); the erase and its report; the scan
# alone; and an interrupted erase (a planted erase.intent): every command
# finishes it first, says so, prints no record, and answers as for a store
# that does not exist, while validate only reports it.
# usage: test_erase_cli.sh path/to/boxguard
set -u
BG=${1:?usage: test_erase_cli.sh path/to/boxguard}
source "$(dirname "$0")/lib.sh"

S=$T/s
MARK=MARKER-7f3a9c2e
snapshot() { (cd "$S" && find . -print0 | sort -z | xargs -0 ls -ld --time-style=+ | awk '{print $1, $5, $NF}'; find . -type f -print0 | sort -z | xargs -0 sha256sum); }

# A store with a plain box, a sealed one, a queue and a migration's backup.
make_store() {
  rm -rf "$S"
  "$BG" put --store "$S" --box notes --key n1 --type 0 --json "\"$MARK\"" &&
    "$BG" put --store "$S" --box secret --key s1 --type 0 --json "\"$MARK\"" --encrypt &&
    "$BG" queue enqueue --store "$S" --idem i1 --op "{\"m\":\"$MARK\"}" >/dev/null &&
    "$BG" queue lease --store "$S" >/dev/null &&
    "$BG" migrate --store "$S" --plan "$T/plan.json" >/dev/null
}
cat >"$T/plan.json" <<'JSON'
{"migrations":[{"id":"touch-notes","from":1,"to":2,"boxes":["notes"],"ops":[]}]}
JSON
make_store 2>"$T/make.err" || { cat "$T/make.err"; exit 1; }
check "the store has a key, a backup and a lease log" -- test -e "$S/keys/1.key" -a -d "$S/backups" -a -e "$S/pending_ops.leases"

expect 0 "erase --help" -- "$BG" erase --help
check "its own page" -- grep -qF "boxguard erase --verify --store DIR" "$T/out"
check "with what it does not cover" -- grep -qF "copy-on-write" "$T/out"

before=$(snapshot)
expect 2 "erase without --yes" -- "$BG" erase --store "$S"
check "says what --yes does" -- grep -qF "run it again with --yes" "$T/err"
check "nothing changed" -- test "$(snapshot)" = "$before"
expect 2 "erase --verify --yes" -- "$BG" erase --verify --yes --store "$S"
expect 2 "erase without --store" -- "$BG" erase --yes
expect 2 "erase with a stray option" -- "$BG" erase --store "$S" --yes --force

printf 'mine\n' >"$S/notes.txt"
mkdir "$S/photos"
before=$(snapshot)
expect 2 "erase over files the store did not make" -- "$BG" erase --store "$S" --yes
check "names them" -- grep -qF "not made by the store: notes.txt" "$T/err"
check "names the directory" -- grep -qF "not made by the store: photos/" "$T/err"
check "and that nothing was erased" -- grep -qF "nothing was erased" "$T/err"
check "nothing changed" -- test "$(snapshot)" = "$before"
rm -rf "$S/notes.txt" "$S/photos"

expect 1 "verify of a store that is there" -- "$BG" erase --verify --store "$S" --json
check "not complete" -- grep -qF '"complete":false' "$T/out"
check "its key listed" -- grep -qF '"remaining_keys":["keys/1.key"]' "$T/out"
check "its boxes listed" -- grep -qF '"notes.box"' "$T/out"
nfiles=$(cd "$S" && find . -mindepth 1 | wc -l)
check "every entry counted ($nfiles)" -- grep -qF "\"remaining_files_count\":$nfiles" "$T/out"

expect 0 "erase --yes --json" -- "$BG" erase --store "$S" --yes --json
check "erased" -- grep -qF '"erased":true' "$T/out"
check "one key destroyed" -- grep -qF '"keys_destroyed":1' "$T/out"
check "keys/, backups/<id>/, backups/ and the store removed" -- grep -qF '"dirs_removed":4' "$T/out"
check "the scan is complete" -- grep -qF '"scan":{"complete":true' "$T/out"
check "no file of the store remains" -- test ! -e "$S"
expect 0 "verify after" -- "$BG" erase --verify --store "$S"
check "says complete" -- grep -qF "complete, nothing of the store remains" "$T/out"
expect 1 "erase of a store that does not exist" -- "$BG" erase --store "$S" --yes
check "says so" -- grep -qF "store '$S' does not exist" "$T/err"
check "and makes none" -- test ! -e "$S"

# An interrupted erase: the intent is all it takes.
for cmd in "get --box notes --key n1" "dump --box notes" "dump --box secret" \
  "stats" "verify" "queue lease" "queue failed" "queue stats --json" \
  "migrate status" "rekey" "put --box x --key k --type 0 --json 1" \
  "export-sqlite --db $T/x.db"; do
  make_store 2>/dev/null
  printf '{}\n' >"$S/erase.intent"
  # shellcheck disable=SC2086
  expect 1 "$cmd on a store being erased" -- "$BG" $cmd --store "$S"
  check "$cmd: finishes the erase and says so" -- grep -qF "store '$S': finished an interrupted erase" "$T/err"
  check "$cmd: prints no record" -- bash -c "! grep -qF '$MARK' '$T/out'"
  check "$cmd: nothing of the store remains" -- test ! -e "$S"
done
make_store 2>/dev/null
printf '{}\n' >"$S/erase.intent"
before=$(snapshot)
expect 1 "validate of a store being erased" -- "$BG" validate --store "$S" --json
check "needs recovery" -- grep -qF '"status":"needs_recovery"' "$T/out"
check "the finding" -- grep -qF '"code":"erase_interrupted"' "$T/out"
check "no record printed" -- bash -c "! grep -qF '$MARK' '$T/out'"
check "validate changed nothing" -- test "$(snapshot)" = "$before"
expect 0 "erase --yes finishes it" -- "$BG" erase --store "$S" --yes
check "says so" -- grep -qF "finished an interrupted erase" "$T/err"
check "and scans" -- grep -qF "complete, nothing of the store remains" "$T/out"
check "gone" -- test ! -e "$S"

finish "erase cli"
