#!/usr/bin/env bash
# Acceptance test of `make install` / `make uninstall` / `make dist` (suite "install" of
# scripts/test.sh; after `make lib`, whose release artifacts it installs):
#   - make install PREFIX=<fresh dir>: the library with its SONAME links, the headers, nexus.pc,
#     the CMake package, the CLI, the man page and the completions, no debug info;
#   - the C quick start built with pkg-config against the prefix, shared (rpath) and static;
#   - the C++ quick start built by a CMake project outside the tree with
#     find_package(nexus CONFIG REQUIRED), against nexus::nexus and nexus::nexus_static; the
#     package's version check, and the package found again after the prefix was moved;
#   - the CLI tour (examples/cli/tour.sh) with the installed bin directory on PATH;
#   - the Python package's own install test, when bindings/python/install_test.sh exists;
#   - make dist PREFIX=<same dir>: its tarball holds the same files, byte for byte;
#   - make uninstall: the prefix is empty again; with DESTDIR, directories that were there
#     before the install (and files of others) stay.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
major=${version%%.*}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
prefix=$scratch/prefix
mkdir "$prefix"

step() { echo "-- $*"; }
fail() { echo "test-install: FAILED: $*" >&2; exit 1; }
# needed FILE: the NEEDED entries of an ELF file, one a line.
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'; }
# listing DIR: the files and symlinks under DIR, relative, sorted.
listing() { (cd "$1" && find . -mindepth 1 ! -type d | sed 's|^\./||' | LC_ALL=C sort); }
quiet_make() { make --no-print-directory -s "$@" >"$scratch/make.log" 2>&1 || { cat "$scratch/make.log"; fail "make $*"; }; }

step "make install PREFIX=$prefix"
quiet_make install PREFIX="$prefix"
tail -n 1 "$scratch/make.log"
for f in bin/nexus include/nexus.h include/nexus.hpp "lib/libnexus.so.$version" lib/libnexus.a \
         lib/pkgconfig/nexus.pc lib/cmake/nexus/nexusConfig.cmake \
         lib/cmake/nexus/nexusConfigVersion.cmake share/man/man1/nexus.1 \
         share/bash-completion/completions/nexus share/zsh/site-functions/_nexus \
         share/fish/vendor_completions.d/nexus.fish; do
    [[ -f $prefix/$f && -s $prefix/$f ]] || fail "$f is not installed (or empty)"
done
[[ $(readlink "$prefix/lib/libnexus.so.$major") == "libnexus.so.$version" ]] || fail "libnexus.so.$major link"
[[ $(readlink "$prefix/lib/libnexus.so") == "libnexus.so.$major" ]] || fail "libnexus.so link"
soname=$(readelf -d "$prefix/lib/libnexus.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[[ $soname == "libnexus.so.$major" ]] || fail "SONAME is '$soname', not libnexus.so.$major"
for f in bin/nexus "lib/libnexus.so.$version" lib/libnexus.a; do
    if readelf -S -W "$prefix/$f" 2>/dev/null | grep -q '\.debug_'; then fail "$f carries debug info"; fi
done
[[ -x $prefix/bin/nexus ]] || fail "bin/nexus is not executable"
cmp -s "$prefix/include/nexus.h" include/nexus.h || fail "installed nexus.h differs from include/nexus.h"
echo "   installed: $(listing "$prefix" | wc -l) files; SONAME $soname; no .debug_* sections"
ls -l "$prefix/lib/libnexus.so.$version" "$prefix/lib/libnexus.a" "$prefix/bin/nexus" | awk '{ printf "   %6.1f MB %s\n", $5 / 1e6, $NF }'

step "the installed sizes README.md states (within 15%)"
# README.md: "Installed sizes (...): `libnexus.so` 7.5 MB, `libnexus.a` 34 MB, `nexus` 10 MB".
sizes_line=$(sed -n '/<!-- sizes:/,/^$/p' README.md | tr '\n' ' ')
for pair in "libnexus.so:lib/libnexus.so.$version" "libnexus.a:lib/libnexus.a" "nexus:bin/nexus"; do
    name=${pair%%:*} file=$prefix/${pair#*:}
    said=$(grep -oP "\`\Q$name\E\` \K[0-9.]+(?= MB)" <<<"$sizes_line" | head -n 1)
    [[ -n $said ]] || fail "README.md states no size for $name"
    actual=$(stat -c %s "$file")
    awk -v a="$actual" -v s="$said" 'BEGIN { r = a / (s * 1e6); exit !(r > 0.85 && r < 1.15) }' \
        || fail "README.md says $name is $said MB; the installed one is $(awk -v a="$actual" 'BEGIN { printf "%.1f", a / 1e6 }') MB"
    echo "   $name: README $said MB, installed $(awk -v a="$actual" 'BEGIN { printf "%.1f", a / 1e6 }') MB"
done

step "C quick start via pkg-config, shared (rpath to the prefix)"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[[ $(pkg-config --variable=prefix nexus) == "$prefix" ]] || fail "nexus.pc's prefix is not $prefix"
[[ $(pkg-config --modversion nexus) == "$version" ]] || fail "nexus.pc's version"
read -r -a cflags <<<"$(pkg-config --cflags nexus)"
read -r -a libs <<<"$(pkg-config --libs nexus)"
cc -std=c99 -Wall -Wextra -Werror examples/c/quickstart.c "${cflags[@]}" "${libs[@]}" \
    -Wl,-rpath,"$prefix/lib" -o "$scratch/c_shared"
needed "$scratch/c_shared" | grep -qx "libnexus.so.$major" || fail "c_shared does not need libnexus.so.$major"
ldd "$scratch/c_shared" | grep -q "libnexus.so.$major => $prefix/lib/libnexus.so.$major" \
    || { ldd "$scratch/c_shared"; fail "c_shared does not load the installed library"; }
out=$("$scratch/c_shared" "$scratch/c_shared.db")
grep -q '"name":"Ada"' <<<"$out" || fail "C quick start (shared) printed: $out"

step "C quick start via pkg-config --static, against libnexus.a"
read -r -a static_libs <<<"$(pkg-config --libs --static nexus)"
libdir=$(pkg-config --variable=libdir nexus)
# -lnexus would pick libnexus.so, which sits beside the archive: name the archive.
static_libs=("${static_libs[@]/#-lnexus/$libdir/libnexus.a}")
cc -std=c99 -Wall -Wextra -Werror examples/c/quickstart.c "${cflags[@]}" "${static_libs[@]}" \
    -o "$scratch/c_static"
if needed "$scratch/c_static" | grep -q libnexus; then fail "c_static still needs libnexus.so"; fi
out=$("$scratch/c_static" "$scratch/c_static.db")
grep -q '"name":"Ada"' <<<"$out" || fail "C quick start (static) printed: $out"
unset PKG_CONFIG_PATH

step "C++ quick start with CMake find_package(nexus CONFIG REQUIRED), outside the tree"
proj=$scratch/cpp
mkdir "$proj"
cp examples/cpp/quickstart.cpp "$proj/"
# The README's CMake quick start, copied out of the tree with the source it builds.
cp examples/cpp/CMakeLists.txt "$proj/"
cmake -S "$proj" -B "$proj/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    >"$scratch/cmake.log" 2>&1 || { cat "$scratch/cmake.log"; fail "cmake configure"; }
cmake --build "$proj/build" -j 2 >>"$scratch/cmake.log" 2>&1 || { cat "$scratch/cmake.log"; fail "cmake build"; }
needed "$proj/build/quickstart_shared" | grep -qx "libnexus.so.$major" || fail "quickstart_shared does not need libnexus.so.$major"
if needed "$proj/build/quickstart_static" | grep -q libnexus; then fail "quickstart_static needs libnexus.so"; fi
for kind in shared static; do
    out=$("$proj/build/quickstart_$kind" "$scratch/cpp_$kind.db")
    grep -q '^deleted 1, left 2$' <<<"$out" || fail "C++ quick start ($kind) printed: $out"
done

step "the CMake package's version check, and the package found from a moved prefix"
# A configure without a compiler (LANGUAGES NONE) that reports what find_package found.
probe=$scratch/probe
mkdir "$probe"
cat >"$probe/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.19)
project(nexus_probe LANGUAGES NONE)
find_package(nexus ${WANT} CONFIG)
if(nexus_FOUND)
  get_target_property(location nexus::nexus_static IMPORTED_LOCATION)
  message(STATUS "PROBE found ${nexus_VERSION} ${location}")
else()
  message(STATUS "PROBE not found")
endif()
CMAKE
probe() { # probe PREFIX WANT: prints what the probe found
    rm -rf "$probe/build"
    cmake -S "$probe" -B "$probe/build" -DCMAKE_PREFIX_PATH="$1" -DWANT="$2" 2>&1 | sed -n 's/^-- PROBE //p'
}
[[ $(probe "$prefix" "$version") == "found $version $prefix/lib/libnexus.a" ]] || fail "find_package(nexus $version EXACT-ish)"
[[ $(probe "$prefix" "$major.0...<$((major + 1))") == "found $version"* ]] || fail "find_package(nexus range)"
[[ $(probe "$prefix" "$((major + 1))") == "not found" ]] || fail "find_package(nexus $((major + 1))) accepted $version"
[[ $(probe "$prefix" "$version.1") == "not found" ]] || fail "find_package(nexus $version.1) accepted $version"
mv "$prefix" "$scratch/moved"
got=$(probe "$scratch/moved" "$major")
mv "$scratch/moved" "$prefix"
[[ $got == "found $version $scratch/moved/lib/libnexus.a" ]] || fail "the moved prefix's package: $got"

step "the CLI tour (examples/cli/tour.sh) with the installed bin directory on PATH"
[[ $(env -u NEXUS PATH="$prefix/bin:$PATH" bash -c 'command -v nexus') == "$prefix/bin/nexus" ]] \
    || fail "nexus on PATH is not the installed one"
out=$(env -u NEXUS PATH="$prefix/bin:$PATH" bash examples/cli/tour.sh 2>&1) \
    || { echo "$out"; fail "examples/cli/tour.sh"; }
grep -q '"alan"' <<<"$out" || { echo "$out"; fail "the tour's find printed no alan"; }
[[ $("$prefix/bin/nexus" --version) == "nexus $version" ]] || fail "nexus --version"

step "the man page and the completions"
grep -q '^\.TH nexus 1' "$prefix/share/man/man1/nexus.1" || fail "nexus.1 is not a section 1 man page"
if man -l "$prefix/share/man/man1/nexus.1" >"$scratch/man.txt" 2>/dev/null && [[ -s $scratch/man.txt ]]; then
    grep -q 'completions' "$scratch/man.txt" || fail "man -l nexus.1 does not list the subcommands"
    echo "   man -l renders it ($(wc -l <"$scratch/man.txt") lines)"
else
    echo "   (man -l unavailable here: checked the roff file only)"
fi
bash -c "source '$prefix/share/bash-completion/completions/nexus' && complete -p nexus" >/dev/null \
    || fail "the bash completion does not register for nexus"
head -n 1 "$prefix/share/zsh/site-functions/_nexus" | grep -q '^#compdef nexus' || fail "_nexus is not a zsh completion"
grep -q '^complete -c nexus' "$prefix/share/fish/vendor_completions.d/nexus.fish" || fail "nexus.fish is not a fish completion"

# The Python package's install test (written beside the binding): a fresh venv, pip install,
# its quick start against this prefix.
if [[ -f bindings/python/install_test.sh ]]; then
    step "bindings/python/install_test.sh $prefix"
    bash bindings/python/install_test.sh "$prefix"
fi

step "make dist PREFIX=$prefix: the tarball holds what make install put there"
quiet_make dist PREFIX="$prefix"
tarball=target/dist/nexuslite-$version-linux-$(uname -m).tar.gz
[[ -f $tarball ]] || fail "$tarball was not made"
top=nexuslite-$version-linux-$(uname -m)
tar -tzf "$tarball" | grep -v "^$top/" && fail "entries outside $top/ in $tarball"
mkdir "$scratch/unpacked"
tar -xzf "$tarball" -C "$scratch/unpacked"
diff <(listing "$prefix") <(listing "$scratch/unpacked/$top") || fail "the tarball lists other files than the install"
diff -r --no-dereference "$prefix" "$scratch/unpacked/$top" || fail "the tarball's files differ from the installed ones"
echo "   $tarball: $(tar -tzf "$tarball" | grep -vc '/$') files, $(du -m "$tarball" | cut -f1) MB"

step "make uninstall PREFIX=$prefix leaves it empty"
quiet_make uninstall PREFIX="$prefix"
left=$(find "$prefix" -mindepth 1)
[[ -z $left ]] || fail "left behind by make uninstall: $left"

step "make install / uninstall with DESTDIR keep what was there before"
stage=$scratch/stage
mkdir -p "$stage/usr/local/share"
echo keep >"$stage/usr/local/share/other-package.txt"
quiet_make install DESTDIR="$stage" PREFIX=/usr/local
[[ -f $stage/usr/local/lib/pkgconfig/nexus.pc ]] || fail "DESTDIR install put nothing under $stage/usr/local"
grep -qx 'prefix=/usr/local' "$stage/usr/local/lib/pkgconfig/nexus.pc" || fail "nexus.pc names the staging directory"
quiet_make uninstall DESTDIR="$stage" PREFIX=/usr/local
left=$(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | tr '\n' ' ')
[[ $left == "./usr ./usr/local ./usr/local/share ./usr/local/share/other-package.txt " ]] \
    || fail "after uninstall with DESTDIR: $left"

echo "install: ok"
