#!/usr/bin/env bash
# ci/layers, the check that the core's modules call only down: it passes on
# the tree, and it fails on each thing it is there to catch (a call up, a
# call across, a module in no layer, a vfs call around the handle), and
# fails closed (exit 2) when it cannot look.
# usage: test_layers.sh path/to/ci/layers ARCHITECTURE.md engine/src libboxguard.a
set -u
L=${1:?usage} DOC=${2:?usage} SRC=${3:?usage} LIB=${4:?usage}
source "$(dirname "$0")/lib.sh"

expect 0 "the tree keeps its layers" -- "$L" --doc "$DOC" --src "$SRC" "$LIB"
check "every module listed" -- grep -q "layers: .* modules, .* dependencies, 0 violations" "$T/out"

# store (which calls box, journal, meta) put below box: calls up.
sed 's/^13 store plan$/13 plan/; s/^5  keys lease_log syncer$/5  keys lease_log syncer store/' "$DOC" >"$T/down.md"
expect 1 "a module below what it calls" -- "$L" --doc "$T/down.md" --src "$SRC" "$LIB"
check "the call up named" -- grep -q "VIOLATION: store (layer 5) calls up into box" "$T/out"

# meta and queue on one layer: queue calls meta, across.
sed 's/^11 meta$/11 rekey/; s/^12 journal queue wipe rekey audit$/12 journal queue wipe audit meta/' "$DOC" >"$T/across.md"
expect 1 "a call across one layer" -- "$L" --doc "$T/across.md" --src "$SRC" "$LIB"
check "the call across named" -- grep -q "VIOLATION: queue (layer 12) calls across into meta (layer 12)" "$T/out"

sed 's/^12 journal queue wipe rekey audit$/12 journal queue wipe audit/' "$DOC" >"$T/missing.md"
expect 1 "a module in no layer" -- "$L" --doc "$T/missing.md" --src "$SRC" "$LIB"
check "the module named" -- grep -q "VIOLATION: module rekey is in no layer" "$T/out"

mkdir "$T/src"
cp "$SRC"/*.c "$T/src/"
printf 'void f(bg_store *s) { s->vfs->sync_dir(s->vfs, "x"); }\n' >>"$T/src/queue.c"
expect 1 "a vfs call around the handle" -- "$L" --doc "$DOC" --src "$T/src" "$LIB"
check "the call named" -- grep -q "VIOLATION: a vfs call around the handle's wrappers: queue.c:" "$T/out"

expect 2 "no table to check against" -- "$L" --doc "$T/none.md" --src "$SRC" "$LIB"
printf '# no layers here\n' >"$T/empty.md"
expect 2 "a document without a layers block" -- "$L" --doc "$T/empty.md" --src "$SRC" "$LIB"
: >"$T/empty.a"
expect 2 "a library nm cannot read" -- "$L" --doc "$DOC" --src "$SRC" "$T/empty.a"

finish "layers"
