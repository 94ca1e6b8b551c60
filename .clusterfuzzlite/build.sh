#!/bin/bash -eu
# Build every fuzz target of boxguard the way OSS-Fuzz and ClusterFuzzLite
# expect: compiled with $CC $CFLAGS, linked with $CXX $CXXFLAGS and
# $LIB_FUZZING_ENGINE, the dependencies linked statically, and in $OUT
# each target with its seed corpus (<target>_seed_corpus.zip), its
# dictionary (<target>.dict) when it has one, and its options
# (<target>.options).
#
# cJSON: Debian and Ubuntu ship no static libcjson. The Dockerfile clones
# it to $SRC/cJSON and it is compiled here with the same flags; without that
# checkout (a local run of this script), the shared libcjson is copied to
# $OUT/lib and found through the targets' RUNPATH ($ORIGIN/lib).
SRC_DIR=${BOXGUARD_SRC:-$SRC/boxguard}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK/obj" "$OUT"
cd "$SRC_DIR"

inc=(-Iengine/include -Iengine/src -Itests $(pkg-config --cflags libcjson))
cjson_link=()
if [ -f "$SRC/cJSON/cJSON.c" ]; then
  mkdir -p "$WORK/cjson/cjson"
  cp "$SRC/cJSON/cJSON.h" "$WORK/cjson/cjson/"
  $CC $CFLAGS -c "$SRC/cJSON/cJSON.c" -o "$WORK/cjson/cJSON.o"
  ar rcs "$WORK/cjson/libcjson.a" "$WORK/cjson/cJSON.o"
  inc=(-I"$WORK/cjson" "${inc[@]}")
  cjson_link=("$WORK/cjson/libcjson.a")
else
  mkdir -p "$OUT/lib"
  so=$(pkg-config --variable=libdir libcjson)/libcjson.so.1
  cp -L "$so" "$OUT/lib/"
  cjson_link=(-L"$OUT/lib" -l:libcjson.so.1 -Wl,-rpath,'$ORIGIN/lib')
fi

# The engine, the simulated disk and the typeId scanner, as one archive.
objs=()
for f in engine/src/*.c engine/testing/vfs_sim.c engine/tools/*.c; do
  o="$WORK/obj/$(basename "${f%.c}").o"
  $CC $CFLAGS -std=c11 "${inc[@]}" -c "$f" -o "$o"
  objs+=("$o")
done
rm -f "$WORK/libboxguard_all.a"
ar rcs "$WORK/libboxguard_all.a" "${objs[@]}"

# libarchive's own static dependencies (and libxml2's) in one group: the
# linker goes round them until every symbol is found. The C library's
# (libm) stay shared, as they are on every runner.
archive_deps=$(pkg-config --static --libs libarchive libxml-2.0 |
  tr ' ' '\n' | grep -vx -e -lm -e '' | tr '\n' ' ')
static_deps=(-Wl,-Bstatic -Wl,--start-group -lsodium -lxxhash -lsqlite3
  $archive_deps -Wl,--end-group -Wl,-Bdynamic -lstdc++ -lm -lpthread -ldl)

for src in fuzz/fuzz_*.c; do
  t=$(basename "${src%.c}")
  $CC $CFLAGS -std=c11 "${inc[@]}" -c "$src" -o "$WORK/obj/$t.o"
  $CXX $CXXFLAGS $LIB_FUZZING_ENGINE "$WORK/obj/$t.o" \
    "$WORK/libboxguard_all.a" "${cjson_link[@]}" "${static_deps[@]}" \
    -o "$OUT/$t"
  if [ -d "corpus/$t" ] && [ -n "$(ls -A "corpus/$t")" ]; then
    (cd "corpus/$t" && zip -q -j -r "$OUT/${t}_seed_corpus.zip" .)
  fi
  [ -f "fuzz/$t.dict" ] && cp "fuzz/$t.dict" "$OUT/$t.dict"
  {
    echo "[libfuzzer]"
    echo "max_len = 65536"
    [ -f "fuzz/$t.dict" ] && echo "dict = $t.dict"
  } >"$OUT/$t.options"
done
