#!/usr/bin/env bash
# Every way an invocation of the boxguard command can be wrong, one row
# each: the exit code, a part of the message on stderr, and that a
# refusal wrote nothing (the store's files are byte for byte as before).
# usage: test_cli_errors.sh path/to/boxguard
set -u
BG=${1:?usage: test_cli_errors.sh path/to/boxguard}
source "$(dirname "$0")/lib.sh"

S=$T/s
expect 0 "a store" -- "$BG" put --store "$S" --box b --key k --type 0 --json 1
snapshot() { (cd "$S" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(snapshot)

# refuse CODE MESSAGE ARGS...: exit CODE, MESSAGE in stderr, store untouched.
refuse() {
  local code=$1 says=$2
  shift 2
  expect "$code" "boxguard $*" -- "$BG" "$@"
  check "boxguard $*: says '$says'" -- grep -qF -- "$says" "$T/err"
  check "boxguard $*: nothing written" -- test "$(snapshot)" = "$before"
}

refuse 2 "unknown command 'bogus'" bogus
refuse 2 "get needs --key" get --store "$S" --box b
refuse 2 "--key needs a value" get --store "$S" --box b --key
refuse 2 "unknown option '--bogus'" get --store "$S" --box b --key k --bogus
refuse 2 "unknown option 'extra'" stats --store "$S" --json extra
refuse 2 "dump needs --box" dump --store "$S"
refuse 2 "load needs --box" load --store "$S"
refuse 2 "get needs --store DIR" get --box b --key k
for t in x -1 +1 4294967296 ""; do
  refuse 2 "--type must be an integer from 0 to 4294967295, not '$t'" \
    put --store "$S" --box b --key k2 --type "$t" --json 1
done
refuse 2 "empty JSON value" put --store "$S" --box b --key k2 --type 0
refuse 2 "malformed JSON at byte 0: a number must not have a leading zero" \
  put --store "$S" --box b --key k2 --type 0 --json 012
refuse 2 "--durability needs a value" put --store "$S" --box b --key k2 --type 0 --json 1 --durability
refuse 2 "cannot read adapter manifest '$T/none'" \
  put --store "$S" --box b --key k2 --type 0 --json 1 --adapters "$T/none"
printf 'not json' >"$T/bad-manifest"
refuse 2 "adapter manifest '$T/bad-manifest'" \
  put --store "$S" --box b --key k2 --type 0 --json 1 --adapters "$T/bad-manifest"
refuse 1 "box 'missing' does not exist" dump --store "$S" --box missing
refuse 1 "cannot open" verify --store "$S" --box missing
refuse 1 "cannot open" recover --store "$S" --box missing
refuse 1 "no key 'nokey'" del --store "$S" --box b --key nokey
refuse 1 "no key 'nokey'" get --store "$S" --box b --key nokey
refuse 1 "store '$T/nowhere' does not exist" stats --store "$T/nowhere"
refuse 2 "export-sqlite needs --db" export-sqlite --store "$S"
for c in 0 abc 10000001 -5; do
  refuse 2 "--chunk must be 1..10000000 rows, not '$c'" \
    export-sqlite --store "$S" --db "$T/x.db" --chunk "$c"
done
refuse 2 "--schema-version must be a positive integer, not 'x'" \
  validate --store "$S" --schema-version x
refuse 2 "--schema-version must be a positive integer, not '0'" \
  validate --store "$S" --schema-version 0

# migrate
refuse 2 "migrate needs --store DIR" migrate
refuse 2 "unknown option 'bogus'" migrate bogus --store "$S"
refuse 2 "migrate needs --plan FILE" migrate --store "$S"
refuse 2 "--plan needs a value" migrate --store "$S" --plan
refuse 2 "cannot read plan '$T/none'" migrate --store "$S" --plan "$T/none"
printf '{"migrations":[]}' >"$T/empty-plan"
refuse 2 "needs \"migrations\", a non-empty list" migrate --store "$S" --plan "$T/empty-plan"
printf '{"migrations":[{"id":"x","from":2,"to":1,"boxes":["b"],"ops":[]}]}' >"$T/backwards"
refuse 2 "plan: migration 1" migrate --store "$S" --plan "$T/backwards"
refuse 1 "no committed migration to roll back" migrate rollback --store "$S"

# queue (one op first: the first enqueue creates its boxes)
expect 0 "the queue exists" -- "$BG" queue enqueue --store "$S" --idem init --op 1
before=$(snapshot)
refuse 2 "queue lease needs --store DIR" queue lease
refuse 2 "unknown command 'bogus'" queue bogus --store "$S"
refuse 2 "unknown option '--bogus'" queue stats --store "$S" --bogus
for id in "" 0 x 1x -1; do
  refuse 2 "queue ack needs --id ID (a positive integer)" queue ack --store "$S" --id "$id"
done
refuse 2 "queue retry needs --idem KEY" queue retry --store "$S"
refuse 2 "--error needs a value" queue nack --store "$S" --id 1 --error
refuse 2 "queue nack needs --error TEXT" queue nack --store "$S" --id 1
expect 1 "ack of an id that is not pending" -- "$BG" queue ack --store "$S" --id 123456
check "the id as it was typed, in decimal" -- grep -q "op 123456 is not pending" "$T/err"
expect 0 "queue compact --json" -- "$BG" queue compact --store "$S" --json
check "compact answers in JSON" -- grep -qx '{"compacted":true}' "$T/out"
expect 0 "queue lock" -- "$BG" queue lock --store "$S" --owner me --json
expect 0 "queue lock --release --json" -- "$BG" queue lock --store "$S" --owner me --release --json
check "release answers in JSON" -- grep -qx '{"locked":false}' "$T/out"
before=$(snapshot) # compact and lock wrote
refuse 2 "max-attempts must be 1..1000000" queue nack --store "$S" --id 1 --error e --max-attempts 1000001
refuse 2 "max-attempts must be 1..1000000" queue nack --store "$S" --id 1 --error e --max-attempts x
refuse 2 "empty JSON value" queue enqueue --store "$S" --idem a </dev/null
refuse 2 "malformed JSON" queue enqueue --store "$S" --idem a --op '{"a":01}'
refuse 2 "idempotency key" queue enqueue --store "$S" --idem "" --op 1

# typeids
refuse 2 "usage: boxguard typeids check" typeids
refuse 2 "usage: boxguard typeids check" typeids bogus
refuse 2 "unknown option '--bogus'" typeids check --bogus
refuse 2 "name at least one PATH to scan" typeids check --update-lock
refuse 2 "--format must be text, json, github or sarif, not 'xml'" typeids check --format xml "$T"
refuse 2 "'$T/none' does not exist" typeids check "$T/none"
refuse 2 "cannot read '$T/none'" typeids check --policy "$T/none" "$T"
refuse 2 "cannot read '$T/none'" typeids check --lock "$T/none" "$T"
printf '{"ranges":1}' >"$T/bad-policy"
refuse 2 "policy file needs" typeids check --policy "$T/bad-policy" "$T"
printf '[]' >"$T/bad-lock"
refuse 2 "lock file needs" typeids check --lock "$T/bad-lock" "$T"

# An answer that cannot be written is a failure (exit 3), never a silent 0.
if [ -w /dev/full ]; then
  for c in "get --store $S --box b --key k" "dump --store $S --box b" \
    "stats --store $S" "verify --store $S --box b --json" \
    "validate --store $S" "queue stats --store $S" "migrate status --store $S" \
    "typeids check --format json $T" "--version" "--help"; do
    expect 3 "boxguard $c > /dev/full" -- bash -c "'$BG' $c >/dev/full"
    check "boxguard $c > /dev/full: says so" -- grep -qF "cannot write to stdout" "$T/err"
  done
fi

# A refusal's message stands alone: no generic text of its code glued on.
expect 2 "a write to the meta box" -- "$BG" put --store "$S" --box meta --key k --type 0 --json 1
check "the message is exactly the refusal" -- test "$(cat "$T/err")" = "boxguard: box 'meta' is reserved for the store itself"
expect 1 "a key that is not there" -- "$BG" get --store "$S" --box b --key nothere
check "no ': not found' glued on" -- test "$(cat "$T/err")" = "boxguard: box 'b': no key 'nothere'"
before=$(snapshot)

# A mistyped store path is never created: every command but those that
# create data (put, load, queue enqueue) answers that the store does not
# exist (exit 1) and leaves the file system as it was.
M=$T/missing/store
mkdir -p "$T/missing"
printf '{"migrations":[]}' >"$T/plan.json"
head -c 32 /dev/zero >"$T/key"
while IFS= read -r line; do
  eval "set -- $line"
  expect 1 "$* on a missing store" -- "$BG" "$@" --store "$M"
  check "$*: says the store does not exist" -- grep -q "does not exist" "$T/err"
  check "$*: creates nothing" -- test -z "$(ls -A "$T/missing")"
done <<'CMDS'
get --box b --key k
del --box b --key k
dump --box b
verify
recover
recover --box b
compact --box b
stats
rekey
export-sqlite --db /dev/null/x.db
queue lease
queue ack --id 1
queue nack --id 1 --error e
queue retry --idem i
queue purge
queue failed
queue stats
queue compact
queue rebuild-index
queue lock --owner o
migrate status
migrate rollback
erase --yes
audit list
audit export --out /dev/null/x
backup create --out $T/missing.bgb --key-file $T/key
CMDS
expect 1 "validate on a missing store" -- "$BG" validate --store "$M"
check "validate names the reason" -- grep -q "does not exist" "$T/out"
check "validate invents no schema version" -- test "$(head -1 "$T/out")" = blocked
expect 1 "validate --json on a missing store" -- "$BG" validate --json --store "$M"
check "its stored_version is null" -- grep -q '"stored_version":null' "$T/out"
check "validate creates nothing" -- test -z "$(ls -A "$T/missing")"

finish "cli errors"
