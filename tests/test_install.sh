#!/usr/bin/env bash
# cmake --install puts the command, the core library, its headers and a
# pkg-config file under a prefix; an app builds against them with
# pkg-config alone and runs; the harness's headers stay out.
# usage: test_install.sh BUILD_DIR EXAMPLE.c CC "EXTRA FLAGS"
set -u
B=${1:?usage} EX=${2:?usage} CC=${3:?usage} EXTRA=${4-}
source "$(dirname "$0")/lib.sh"

expect 0 "cmake --install" -- cmake --install "$B" --prefix "$T/p"
check "bin/boxguard" -- test -x "$T/p/bin/boxguard"
expect 0 "the installed command runs" -- "$T/p/bin/boxguard" --version
check "the core library" -- bash -c "ls '$T'/p/lib*/libboxguard.a"
check "the umbrella header" -- test -f "$T/p/include/boxguard/boxguard.h"
check "no sim or scanner header" -- test ! -e "$T/p/include/boxguard/sim.h" -a ! -e "$T/p/include/boxguard/typeids.h"
pc=$(dirname "$(ls "$T"/p/lib*/pkgconfig/boxguard.pc)")
expect 0 "pkg-config knows it" -- env PKG_CONFIG_PATH="$pc" pkg-config --modversion boxguard
flags=$(PKG_CONFIG_PATH="$pc" pkg-config --cflags --static --libs boxguard)
# shellcheck disable=SC2086
expect 0 "an app builds with pkg-config alone" -- "$CC" -std=c11 $EXTRA -o "$T/notes" "$EX" $flags
expect 0 "and runs" -- "$T/notes" "$T/store"
finish "install"
