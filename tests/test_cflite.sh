#!/usr/bin/env bash
# The ClusterFuzzLite build (.clusterfuzzlite/build.sh) run as OSS-Fuzz
# runs it: clang, $CFLAGS with -fsanitize=fuzzer-no-link and ASan,
# $LIB_FUZZING_ENGINE=-fsanitize=fuzzer, a scratch $SRC, $OUT and $WORK.
# Every fuzz target of fuzz/ must land in $OUT with its seed corpus zip
# (every file of corpus/<target>), its options and its dictionary, link
# its dependencies statically, and run on one input of its corpus.
# usage: test_cflite.sh SOURCE_DIR
set -u
ROOT=${1:?usage: test_cflite.sh SOURCE_DIR}
source "$(dirname "$0")/lib.sh"

export SRC=$T/oss/src OUT=$T/oss/out WORK=$T/oss/work BOXGUARD_SRC=$ROOT
mkdir -p "$SRC" "$OUT" "$WORK"
export CC=clang-14 CXX=clang++-14 SANITIZER=address FUZZING_ENGINE=libfuzzer
flags="-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address -fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link"
export CFLAGS="$flags" CXXFLAGS="$flags" LIB_FUZZING_ENGINE=-fsanitize=fuzzer

expect 0 "build.sh" -- "$ROOT/.clusterfuzzlite/build.sh"
n=0
for src in "$ROOT"/fuzz/fuzz_*.c; do
  t=$(basename "${src%.c}")
  n=$((n + 1))
  check "$t: built" -- test -x "$OUT/$t"
  check "$t: options" -- grep -q '^\[libfuzzer\]$' "$OUT/$t.options"
  if [ -f "$ROOT/fuzz/$t.dict" ]; then
    check "$t: its dictionary" -- cmp "$ROOT/fuzz/$t.dict" "$OUT/$t.dict"
    check "$t: named in its options" -- grep -qx "dict = $t.dict" "$OUT/$t.options"
  fi
  want=$(find "$ROOT/corpus/$t" -type f | wc -l)
  got=$(unzip -Z1 "$OUT/${t}_seed_corpus.zip" 2>/dev/null | wc -l)
  check "$t: seed corpus of $want files" -- test "$got" -eq "$want" -a "$want" -gt 0
  check "$t: its dependencies linked statically" -- bash -c \
    "! ldd '$OUT/$t' | grep -E 'libsodium|libarchive|libsqlite3|libxxhash|libzstd|libxml2'"
  one=$(find "$ROOT/corpus/$t" -type f | sort | head -n 1)
  expect 0 "$t: runs on one input" -- "$OUT/$t" -runs=1 "$one"
done
check "every target of fuzz/ (10 or more)" -- test "$n" -ge 10
check "no target left out" -- test "$(ls "$OUT" | grep -cvE '\.(options|dict|zip)$|^lib$')" -eq "$n"

finish "cflite build"
