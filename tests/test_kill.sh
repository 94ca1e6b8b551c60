#!/usr/bin/env bash
# Real processes killed with SIGKILL at random moments, on the real disk:
#  - `boxguard migrate` adding a required field to 20000 users: after
#    `boxguard migrate status` (which finishes or rolls back what the kill
#    left), the store validates as ready at version 1 or 2, and the users
#    are all at that version: never a mix, none lost or doubled;
#  - `boxguard export-sqlite`: killed, possibly several times in a row, then
#    run to the end: every table's count equals its box's, no key twice,
#    integrity_check ok.
# The kill moments are random (seeded by $BG_KILL_SEED, printed, so that a
# failure can be replayed) over the measured length of a whole run.
# usage: test_kill.sh path/to/boxguard [rounds]
set -u
BG=${1:?usage: test_kill.sh path/to/boxguard [rounds]}
ROUNDS=${2:-12}
source "$(dirname "$0")/lib.sh"
SEED=${BG_KILL_SEED:-$(date +%s)}
RANDOM=$SEED
echo "kill seed: $SEED (BG_KILL_SEED=$SEED to replay)"
N=20000

cat >"$T/v1.json" <<'JSON'
{"adapters":[{"typeId":3,"name":"User","version":1,
  "fields":[{"name":"id","type":"integer","required":true},
            {"name":"name","type":"string","required":true}]}]}
JSON
cat >"$T/v2.json" <<'JSON'
{"adapters":[{"typeId":3,"name":"User","version":2,
  "fields":[{"name":"id","type":"integer","required":true},
            {"name":"name","type":"string","required":true},
            {"name":"email","type":"string","required":true}]}]}
JSON
cat >"$T/plan.json" <<JSON
{"migrations":[{"id":"user-email","from":1,"to":2,"boxes":["users"],
  "adapters":$(cat "$T/v2.json"),
  "ops":[{"op":"add","type":3,"field":"email","default":""}]}]}
JSON
seq 1 $N | awk '{printf "{\"key\":\"u%06d\",\"type\":3,\"value\":{\"id\":%d,\"name\":\"user %d\"}}\n",$1,$1,$1}' >"$T/users.jsonl"
"$BG" load --store "$T/pristine" --box users --adapters "$T/v1.json" <"$T/users.jsonl" >/dev/null || exit 1
"$BG" put --store "$T/pristine" --box notes --key n --type 0 --json '"keep"' || exit 1

# An erase store: the users, a sealed box, twenty small boxes.
cp -a "$T/pristine" "$T/erase-pristine"
"$BG" put --store "$T/erase-pristine" --box secret --key s --type 0 --json '"sealed"' --encrypt || exit 1
for i in $(seq 1 20); do
  "$BG" put --store "$T/erase-pristine" --box "b$i" --key k --type 0 --json "$i" || exit 1
done
ERASE_BOXES=$(ls "$T/erase-pristine" | grep -c '\.box$')

# Microseconds a whole command takes (the kills fall within 1.2 times it).
span_us() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
# Start the command, SIGKILL it after a random part of span $1 (us).
kill_randomly() {
  local span=$1
  shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  local at=$(((RANDOM * 32768 + RANDOM) % (span * 12 / 10 + 1)))
  sleep "$(printf '%d.%06d' $((at / 1000000)) $((at % 1000000)))"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  echo "$at"
}

cp -a "$T/pristine" "$T/s"
MIG_US=$(span_us "$BG" migrate --store "$T/s" --plan "$T/plan.json")
at1=0 at2=0 phases=""
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$T/s"
  cp -a "$T/pristine" "$T/s"
  at=$(kill_randomly "$MIG_US" "$BG" migrate --store "$T/s" --plan "$T/plan.json")
  expect 0 "round $r (kill at ${at}us): migrate status" -- "$BG" migrate status --store "$T/s" --json
  v=$(sed -n 's/^{"version":\([0-9]*\).*/\1/p' "$T/out")
  check "round $r: version 1 or 2 (got '$v')" -- test "$v" = 1 -o "$v" = 2
  [ "$v" = 2 ] && at2=$((at2 + 1)) || at1=$((at1 + 1))
  ph=$(sed -n 's/.*"resolved":"[^"]*\(in\|after\) phase \([a-z_]*\).*/\2/p' "$T/out")
  phases="$phases ${ph:-none}"
  expect 0 "round $r: ready at version $v" -- "$BG" validate --store "$T/s" --schema-version "$v" --adapters "$T/v$v.json"
  expect 0 "round $r: dump" -- "$BG" dump --store "$T/s" --box users
  total=$(wc -l <"$T/out")
  keys=$(sed 's/^{"key":"\([^"]*\)".*/\1/' "$T/out" | sort -u | wc -l)
  migrated=$(grep -c '"email":""' "$T/out")
  check "round $r: $N users, each once ($total, $keys distinct)" -- test "$total" -eq $N -a "$keys" -eq $N
  want=0
  [ "$v" = 2 ] && want=$N
  check "round $r: all users at version $v ($migrated of $N migrated)" -- test "$migrated" -eq "$want"
  check "round $r: no journal or staged box left" -- test ! -e "$T/s/migration.journal" -a ! -e "$T/s/users.mig.box"
done
echo "migrate: $ROUNDS kills over ${MIG_US}us runs: $at1 ended at version 1, $at2 at version 2"
echo "phases the kills interrupted (none: before the journal or after the end):"
for p in $phases; do echo "$p"; done | sort | uniq -c

# Export: kill once or twice, then finish; compare with the boxes.
rm -rf "$T/s"
cp -a "$T/pristine" "$T/s"
EXP_US=$(span_us "$BG" export-sqlite --store "$T/s" --db "$T/probe.db" --chunk 300)
resumed=0
for r in $(seq 1 "$ROUNDS"); do
  rm -f "$T/x.db" "$T/x.db-journal"
  for k in $(seq 1 $((1 + r % 2))); do
    kill_randomly "$EXP_US" "$BG" export-sqlite --store "$T/s" --db "$T/x.db" --chunk 300 >/dev/null
  done
  expect 0 "export round $r: the run after the kills" -- "$BG" export-sqlite --store "$T/s" --db "$T/x.db" --chunk 300 --json
  grep -q '"resumed":[1-9]' "$T/out" && resumed=$((resumed + 1))
  users=$(sqlite3 "$T/x.db" "SELECT COUNT(*) || ' ' || COUNT(DISTINCT key) FROM box_users")
  notes=$(sqlite3 "$T/x.db" "SELECT COUNT(*) FROM box_notes")
  check "export round $r: users table matches the box ($users)" -- test "$users" = "$N $N"
  check "export round $r: notes table matches the box ($notes)" -- test "$notes" = 1
  ic=$(sqlite3 "$T/x.db" "PRAGMA integrity_check")
  check "export round $r: integrity_check ($ic)" -- test "$ic" = ok
  done_all=$(sqlite3 "$T/x.db" "SELECT SUM(done) = COUNT(*) FROM migration_sync_status")
  check "export round $r: every table complete" -- test "$done_all" = 1
done
echo "export: $ROUNDS rounds over ${EXP_US}us runs; $resumed resumed rows an earlier run had committed"

# Erase: killed at a random moment, the next command either finds the store
# intact (every box, every record) or finishes the erase (printing no
# record), after which nothing of the store remains.
rm -rf "$T/s"
cp -a "$T/erase-pristine" "$T/s"
ERASE_US=$(span_us "$BG" erase --store "$T/s" --yes)
intact=0 erased=0
for r in $(seq 1 $((ROUNDS * 2))); do
  rm -rf "$T/s"
  cp -a "$T/erase-pristine" "$T/s"
  # Every other round within the first tenth: the moments before the
  # intent is durable are few.
  span=$ERASE_US
  [ $((r % 2)) -eq 1 ] && span=$((ERASE_US / 10))
  at=$(kill_randomly "$span" "$BG" erase --store "$T/s" --yes)
  "$BG" dump --store "$T/s" --box secret >"$T/out" 2>"$T/err"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    intact=$((intact + 1))
    check "erase round $r (kill at ${at}us): the sealed record" -- grep -qF '"sealed"' "$T/out"
    check "erase round $r: no intent left" -- test ! -e "$T/s/erase.intent"
    check "erase round $r: every box there" -- test "$(ls "$T/s" | grep -c '\.box$')" -eq "$ERASE_BOXES"
    expect 0 "erase round $r: users" -- "$BG" dump --store "$T/s" --box users
    check "erase round $r: all $N users" -- test "$(wc -l <"$T/out")" -eq $N
    expect 0 "erase round $r: verify" -- "$BG" verify --store "$T/s"
  else
    erased=$((erased + 1))
    check "erase round $r (kill at ${at}us): exit 1 (got $rc)" -- test "$rc" -eq 1
    check "erase round $r: no record printed" -- test ! -s "$T/out"
    expect 0 "erase round $r: nothing of the store remains" -- "$BG" erase --verify --store "$T/s"
  fi
done
echo "erase: $((ROUNDS * 2)) kills over ${ERASE_US}us runs: $intact left the store intact, $erased erased it"

finish "kill"
