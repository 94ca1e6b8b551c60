#!/usr/bin/env bash
# The README's example session runs as it stands: the ```sh block under
# "### An example session", with the README's migration plan (the ```json
# block after "declarative plan") saved as plan.json and the built
# boxguard first on PATH. Every command must succeed (bash -e), and what
# they print is checked.
# usage: test_readme.sh path/to/boxguard README.md
set -u
BG=${1:?usage} README=${2:?usage}
source "$(dirname "$0")/lib.sh"

mkdir -p "$T/bin" "$T/run"
ln -s "$BG" "$T/bin/boxguard"
awk '/^### An example session$/ {s=1; next} s && /^```sh$/ {b=1; next} b && /^```$/ {exit} b' \
  "$README" >"$T/session.sh"
awk '/declarative plan/ {s=1} s && /^```json$/ {b=1; next} b && /^```$/ {exit} b' \
  "$README" >"$T/run/plan.json"
check "the session was found" -- test "$(grep -c '^boxguard ' "$T/session.sh")" -ge 10
check "the plan was found" -- grep -q '"migrations"' "$T/run/plan.json"
expect 0 "the README's example session" -- \
  env PATH="$T/bin:$PATH" bash -e -c "cd '$T/run' && source '$T/session.sh'"
check "the note read back" -- has '{"title": "Groceries", "tags": ["food"]}'
check "the lease printed the op" -- grep -q '"idem":"save-n1"' "$T/out"
check "the queue is empty after the ack" -- grep -q "^pending 0 " "$T/out"
check "the first plan was refused, naming the box" -- \
  grep -q "box 'notes', which it does not migrate" "$T/err"
check "the user migrated" -- grep -q '"full_name":"Ann"' "$T/out"
check "the store is ready at version 2" -- grep -q "^ready (schema version 2)" "$T/out"
finish "readme"
