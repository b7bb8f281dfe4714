#!/usr/bin/env bash
# Writes target/release/pkgconfig/nexus.pc describing the in-tree build (headers in
# include/, libraries in target/release/), for both link modes:
#   pkg-config --cflags --libs nexus            -> shared libnexus.so
#   pkg-config --cflags --libs --static nexus   -> adds the system libraries libnexus.a needs
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
mkdir -p "$root/target/release/pkgconfig"
cat > "$root/target/release/pkgconfig/nexus.pc" <<PC
prefix=$root
includedir=\${prefix}/include
libdir=\${prefix}/target/release

Name: nexus
Description: NexusLite embedded document database (C ABI)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lnexus
Libs.private: -lpthread -ldl -lm
PC
