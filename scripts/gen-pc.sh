#!/usr/bin/env bash
# Writes nexus.pc, for both link modes:
#   pkg-config --cflags --libs nexus            -> shared libnexus.so
#   pkg-config --cflags --libs --static nexus   -> adds the system libraries libnexus.a needs
#
#   scripts/gen-pc.sh                        target/release/pkgconfig/nexus.pc for the in-tree
#                                            build (headers in include/, libraries in target/release/)
#   scripts/gen-pc.sh PREFIX LIBDIR OUT      an installed one (scripts/install.sh): headers in
#                                            PREFIX/include, libraries in PREFIX/LIBDIR
#   scripts/gen-pc.sh --libs-private         prints the system libraries alone (the CMake
#                                            package's nexus::nexus_static links the same)
set -euo pipefail
# What a Rust static library needs from the system beyond libc (rustc's native-static-libs,
# less what the C compiler links by default).
libs_private="-lpthread -ldl -lm"
if [[ ${1:-} == --libs-private ]]; then echo "$libs_private"; exit 0; fi

root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
if (($# == 3)); then
    prefix=$1 includedir='${prefix}/include' libdir="\${prefix}/$2" out=$3
elif (($# == 0)); then
    prefix=$root includedir='${prefix}/include' libdir='${prefix}/target/release'
    out=$root/target/release/pkgconfig/nexus.pc
else
    echo "usage: $0 [PREFIX LIBDIR OUT | --libs-private]" >&2; exit 2
fi
mkdir -p "$(dirname "$out")"
cat > "$out" <<PC
prefix=$prefix
includedir=$includedir
libdir=$libdir

Name: nexus
Description: NexusLite embedded document database (C ABI)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lnexus
Libs.private: $libs_private
PC
