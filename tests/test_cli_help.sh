#!/usr/bin/env bash
# Help that helps: every command has its own page (boxguard CMD --help),
# unlike the global one and every other; --version works after any
# command; and the README's command list is the command table's synopses,
# line for line, so the two cannot drift.
# usage: test_cli_help.sh path/to/boxguard README.md
set -u
BG=${1:?usage} README=${2:?usage}
source "$(dirname "$0")/lib.sh"

expect 0 "the global page" -- "$BG" --help
cp "$T/out" "$T/global"
# The synopses: the indented lines after "commands:" up to the blank line.
sed -n '/^commands:$/,/^$/p' "$T/global" | sed '1d;$d;s/^  //' >"$T/synopses"
awk '/^## The `boxguard` command$/ {s=1; next} s && /^```$/ {if (b) exit; b=1; next} b' "$README" >"$T/readme"
check "the README lists every command as the table does" -- diff -u "$T/readme" "$T/synopses"
check "some commands were found" -- test "$(grep -c '^boxguard [a-z]' "$T/synopses")" -ge 15

names=$(grep -o '^boxguard [a-z-]*' "$T/synopses" | cut -d' ' -f2 | sort -u)
for c in $names; do
  expect 0 "$c --help" -- "$BG" "$c" --help
  cp "$T/out" "$T/page.$c"
  check "$c: its page is not the global one" -- bash -c "! cmp -s '$T/page.$c' '$T/global'"
  check "$c: its page shows its usage" -- grep -q "boxguard $c" "$T/page.$c"
  expect 0 "$c --version" -- "$BG" "$c" --version
  check "$c --version prints the version" -- grep -q '^boxguard [0-9]' "$T/out"
done
check "every page differs from every other" -- test "$(cat "$T"/page.* | md5sum)" != "" -a \
  "$(for f in "$T"/page.*; do md5sum <"$f"; done | sort | uniq -d | wc -l)" -eq 0

expect 2 "an unknown command" -- "$BG" frobnicate --store x
check "it says so" -- grep -q "unknown command 'frobnicate'" "$T/err"
expect 2 "no command: the global page on stderr" -- "$BG"
check "usage on stderr" -- grep -q "^usage: boxguard <command>" "$T/err"

finish "cli_help"
