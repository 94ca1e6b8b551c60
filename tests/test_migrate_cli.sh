#!/usr/bin/env bash
# boxguard migrate: usage, a dry run that lists every failing record and
# changes nothing, a run, status and history, rollback, and a store whose
# schema version is newer than the code's: blocked, and not a byte changed.
# usage: test_migrate_cli.sh path/to/boxguard
set -u
BG=${1:?usage: test_migrate_cli.sh path/to/boxguard}
source "$(dirname "$0")/lib.sh"

S=$T/store
cat >"$T/v1.json" <<'JSON'
{"adapters":[{"typeId":3,"name":"User","version":1,
  "fields":[{"name":"id","type":"integer","required":true}]}]}
JSON
cat >"$T/v2.json" <<'JSON'
{"adapters":[{"typeId":3,"name":"User","version":2,
  "fields":[{"name":"id","type":"integer","required":true},
            {"name":"email","type":"string","required":true}]}]}
JSON
cat >"$T/plan.json" <<'JSON'
{"migrations":[{"id":"user-email","from":1,"to":2,
  "description":"users get a required email","boxes":["users"],
  "ops":[{"op":"add","type":3,"field":"email","default":""}]}]}
JSON
cat >"$T/plan3.json" <<'JSON'
{"migrations":[{"id":"bump","from":2,"to":3,"boxes":["users"],"ops":[]}]}
JSON
sums() { (cd "$S" && find . -type f | sort | xargs sha256sum); }

expect 0 "migrate help" -- "$BG" migrate --help
check "help names the plan ops" -- grep -q "ops: rename" "$T/out"
expect 2 "migrate without --store" -- "$BG" migrate --plan "$T/plan.json"
expect 2 "migrate without --plan" -- "$BG" migrate --store "$S"
check "says what is missing" -- grep -q "needs --plan FILE" "$T/err"
expect 1 "status of a missing store" -- "$BG" migrate status --store "$S"
check "nothing created" -- test ! -e "$S"
echo '{"migrations":[{"id":"x","from":1,"to":2,"boxes":["users"],"ops":[{"op":"zap","type":3}]}]}' >"$T/bad.json"
expect 2 "bad plan" -- "$BG" migrate --store "$S" --plan "$T/bad.json"
check "bad plan: where and what" -- grep -q "migration 1 ('x'), op 1: needs \"field\"" "$T/err"
expect 2 "unreadable plan" -- "$BG" migrate --store "$S" --plan "$T/none.json"

for i in 1 2 3 4 5; do
  "$BG" put --store "$S" --box users --key "u$i" --type 3 \
    --adapters "$T/v1.json" --json "{\"id\":$i}" || exit 1
done
"$BG" put --store "$S" --box users --key bad --type 3 --json '{"id":9,"email":4}'
"$BG" put --store "$S" --box users --key worse --type 3 --json '{"id":8,"email":[]}'
sums >"$T/before"
expect 1 "dry run with failing records" -- "$BG" migrate --store "$S" --plan "$T/plan.json" --adapters "$T/v2.json" --dry-run
check "every failing record listed" -- bash -c "grep -q 'key=bad:' '$T/out' && grep -q 'key=worse:' '$T/out'"
check "counts reported" -- grep -q "5 records, 5 changed, 2 failed" "$T/out"
expect 1 "run with failing records" -- "$BG" migrate --store "$S" --plan "$T/plan.json" --adapters "$T/v2.json"
check "says nothing changed" -- grep -q "nothing changed" "$T/err"
sums >"$T/after"
check "the boxes are unchanged" -- bash -c "grep users.box '$T/before' | cmp -s - <(grep ' ./users.box' '$T/after')"
check "no journal left" -- test ! -e "$S/migration.journal"

"$BG" del --store "$S" --box users --key bad
"$BG" del --store "$S" --box users --key worse
expect 0 "migrate" -- "$BG" migrate --store "$S" --plan "$T/plan.json" --adapters "$T/v2.json" --json
check "applied" -- grep -q '"version_after":2,"applied":1' "$T/out"
expect 0 "every record migrated" -- "$BG" dump --store "$S" --box users
check "five users with an email" -- test "$(grep -c '"email":""' "$T/out")" -eq 5
expect 0 "ready at version 2" -- "$BG" validate --store "$S" --schema-version 2 --adapters "$T/v2.json"
expect 1 "needs migration for code at 3" -- "$BG" validate --store "$S" --schema-version 3
check "says needs_migration" -- grep -q "^needs_migration" "$T/out"
expect 0 "again: skipped" -- "$BG" migrate --store "$S" --plan "$T/plan.json"
check "skipped said" -- grep -q "0 applied, 1 skipped" "$T/out"
expect 0 "status" -- "$BG" migrate status --store "$S"
check "version" -- grep -q "^schema version 2" "$T/out"
check "history: the failed attempt and the commit" -- bash -c "grep -q 'rolled_back, ' '$T/out' && grep -q ': committed' '$T/out'"
check "backup kept" -- test -f "$S/backups/user-email/users.box"

# Rollback: refused when the box was written since, then forced.
expect 0 "rollback" -- "$BG" migrate rollback --store "$S"
check "back to 1" -- grep -q "schema version 2 -> 1" "$T/out"
expect 0 "dump after rollback" -- "$BG" dump --store "$S" --box users
check "no email after rollback" -- bash -c "! grep -q email '$T/out'"
expect 1 "nothing more to roll back" -- "$BG" migrate rollback --store "$S"
"$BG" migrate --store "$S" --plan "$T/plan.json" --adapters "$T/v2.json" >/dev/null
"$BG" put --store "$S" --box users --key u9 --type 3 --json '{"id":9,"email":"x"}'
expect 2 "rollback over later writes is a policy refusal" -- "$BG" migrate rollback --store "$S"
check "says why" -- grep -q "written after migration 'user-email'" "$T/err"
check "names the flag" -- grep -q "pass --force to roll back anyway" "$T/err"
expect 2 "--force only for rollback" -- "$BG" migrate status --store "$S" --force

# A store newer than the code: blocked, and nothing in it changes.
expect 0 "to version 3" -- "$BG" migrate --store "$S" --plan "$T/plan3.json"
sums >"$T/before"
expect 1 "validate with code at 2" -- "$BG" validate --store "$S" --schema-version 2 --json
check "blocked" -- grep -q '"status":"blocked"' "$T/out"
check "schema_newer" -- grep -q '"code":"schema_newer"' "$T/out"
expect 2 "a plan that ends below the store is not applied" -- "$BG" migrate --store "$S" --plan "$T/bad.json"
expect 0 "an old plan is skipped" -- "$BG" migrate --store "$S" --plan "$T/plan.json"
sums >"$T/after"
check "not a byte changed" -- cmp -s "$T/before" "$T/after"

finish "migrate_cli"
