#!/usr/bin/env bash
# Installs NexusLite like a C library; called by `make install`, `make uninstall`, `make dist`
# after `make lib` (it installs the release artifacts of target/release, building nothing).
#
#   scripts/install.sh install     PREFIX/bin/nexus, PREFIX/include/nexus.h + nexus.hpp,
#                                  PREFIX/lib/libnexus.so.X.Y.Z (+ .so.X, .so links), libnexus.a,
#                                  lib/pkgconfig/nexus.pc, lib/cmake/nexus/ (CMake package),
#                                  share/man/man1/nexus.1, bash / zsh / fish completions
#   scripts/install.sh uninstall   removes what install put there
#   scripts/install.sh dist        target/dist/nexuslite-VERSION-linux-ARCH.tar.gz: what install
#                                  puts under PREFIX, in a top directory of that name
#
# Variables: PREFIX (default /usr/local), DESTDIR (staging root prepended to every path; the
# installed files still name PREFIX), LIBDIR (relative to PREFIX, default lib).
#
# Each install records the files it wrote and the directories it created in
# target/install/<hash of DESTDIR+PREFIX>.manifest (as CMake's install_manifest.txt, in the
# build tree so that nothing extra lands in the prefix); uninstall removes exactly those, the
# directories only when empty. Without a record (target/ cleaned, or another checkout
# installed) it removes the files of the layout and keeps the directories.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rel=$root/target/release

die() { echo "install.sh: $*" >&2; exit 1; }

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
LIBDIR=${LIBDIR:-lib}
[[ $PREFIX == /* ]] || die "PREFIX must be an absolute path, not '$PREFIX'"
[[ $LIBDIR != /* && $LIBDIR != *..* ]] || die "LIBDIR is relative to PREFIX (e.g. lib or lib64), not '$LIBDIR'"
PREFIX=${PREFIX%/}
[[ -z $DESTDIR ]] || DESTDIR=$(realpath -m "$DESTDIR")
LIBDIR=${LIBDIR%/}
dest=$DESTDIR$PREFIX
[[ -n $dest ]] || die "PREFIX=/ without DESTDIR would install into /bin, /lib, ...: use PREFIX=/usr"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
major=${version%%.*}
soname=libnexus.so.$major

manifest_dir=$root/target/install
manifest=$manifest_dir/$(printf '%s' "$dest" | sha256sum | cut -c1-16).manifest

# The installed files, relative to PREFIX (uninstall's list when there is no manifest).
layout() {
    cat <<EOF
bin/nexus
include/nexus.h
include/nexus.hpp
$LIBDIR/libnexus.so.$version
$LIBDIR/$soname
$LIBDIR/libnexus.so
$LIBDIR/libnexus.a
$LIBDIR/pkgconfig/nexus.pc
$LIBDIR/cmake/nexus/nexusConfig.cmake
$LIBDIR/cmake/nexus/nexusConfigVersion.cmake
share/man/man1/nexus.1
share/bash-completion/completions/nexus
share/zsh/site-functions/_nexus
share/fish/vendor_completions.d/nexus.fish
EOF
}

# mkdir -p that records, outermost first, each directory it had to create.
created=()
make_dir() {
    local d=$1 missing=()
    while [[ ! -d $d ]]; do
        [[ -e $d ]] && die "$d exists and is not a directory"
        missing=("$d" "${missing[@]}")
        d=$(dirname "$d")
    done
    ((${#missing[@]})) || return 0
    mkdir -p "${missing[-1]}"
    created+=("${missing[@]}")
}

written=()
put() { # put MODE SRC RELPATH
    local to=$dest/$3
    make_dir "$(dirname "$to")"
    install -m "$1" "$2" "$to"
    written+=("$to")
}
link() { # link TARGET RELPATH
    local to=$dest/$2
    ln -sfn "$1" "$to"
    written+=("$to")
}

do_install() {
    local f
    for f in "$rel/libnexus.so" "$rel/libnexus.a" "$rel/nexus" "$root/include/nexus.h"; do
        [[ -f $f ]] || die "$f is missing: run 'make lib' first (make install does)"
    done
    local got
    got=$(readelf -d "$rel/libnexus.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
    [[ $got == "$soname" ]] || die "libnexus.so has SONAME '$got', expected $soname (build.rs sets it)"

    local gen
    gen=$(mktemp -d)
    trap 'rm -rf "$gen"' RETURN
    "$rel/nexus" manpage >"$gen/nexus.1"
    local sh
    for sh in bash zsh fish; do "$rel/nexus" completions "$sh" >"$gen/$sh"; done
    bash "$root/scripts/gen-pc.sh" "$PREFIX" "$LIBDIR" "$gen/nexus.pc"
    # From lib/cmake/nexus (or lib64/..., lib/x86_64-linux-gnu/...) back up to the prefix.
    local up=../..
    IFS=/ read -r -a parts <<<"$LIBDIR"
    for _ in "${parts[@]}"; do up+=/..; done
    local pointer_size
    pointer_size=$(getconf LONG_BIT)
    pointer_size=$((pointer_size / 8))
    local static_libs
    static_libs=$(bash "$root/scripts/gen-pc.sh" --libs-private | sed 's/^-l//; s/ -l/;/g')
    for f in nexusConfig nexusConfigVersion; do
        sed -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" -e "s|@SONAME@|$soname|g" \
            -e "s|@LIBDIR@|$LIBDIR|g" -e "s|@UP@|$up|g" -e "s|@STATIC_LIBS@|$static_libs|g" \
            -e "s|@SIZEOF_VOID_P@|$pointer_size|g" "$root/cmake/$f.cmake.in" >"$gen/$f.cmake"
    done

    # Directories created by an earlier install into the same place stay on record.
    if [[ -f $manifest ]]; then
        local kind path
        while read -r kind path; do
            [[ $kind == dir && -d $path ]] && created+=("$path")
        done <"$manifest"
    fi

    put 0755 "$rel/nexus" bin/nexus
    put 0644 "$root/include/nexus.h" include/nexus.h
    put 0644 "$root/bindings/cpp/nexus.hpp" include/nexus.hpp
    put 0755 "$rel/libnexus.so" "$LIBDIR/libnexus.so.$version"
    link "libnexus.so.$version" "$LIBDIR/$soname"
    link "$soname" "$LIBDIR/libnexus.so"
    # The archive holds the prebuilt std's objects with their DWARF (Cargo's strip applies
    # to linked artifacts only): 42 MB before, 34 MB after.
    strip --strip-debug -o "$gen/libnexus.a" "$rel/libnexus.a"
    put 0644 "$gen/libnexus.a" "$LIBDIR/libnexus.a"
    put 0644 "$gen/nexus.pc" "$LIBDIR/pkgconfig/nexus.pc"
    put 0644 "$gen/nexusConfig.cmake" "$LIBDIR/cmake/nexus/nexusConfig.cmake"
    put 0644 "$gen/nexusConfigVersion.cmake" "$LIBDIR/cmake/nexus/nexusConfigVersion.cmake"
    put 0644 "$gen/nexus.1" share/man/man1/nexus.1
    put 0644 "$gen/bash" share/bash-completion/completions/nexus
    put 0644 "$gen/zsh" share/zsh/site-functions/_nexus
    put 0644 "$gen/fish" share/fish/vendor_completions.d/nexus.fish

    mkdir -p "$manifest_dir"
    {
        echo "# scripts/install.sh install into $dest"
        printf 'dir %s\n' "${created[@]}" | awk '!seen[$0]++'
        printf 'file %s\n' "${written[@]}"
    } >"$manifest"
    echo "installed NexusLite $version into $dest (make uninstall PREFIX=$PREFIX${DESTDIR:+ DESTDIR=$DESTDIR} removes it)"
}

do_uninstall() {
    local kind path dirs=() n=0
    if [[ -f $manifest ]]; then
        while read -r kind path; do
            case $kind in
                file) if [[ -e $path || -L $path ]]; then rm -f "$path"; n=$((n + 1)); fi ;;
                dir) dirs+=("$path") ;;
            esac
        done <"$manifest"
        # Innermost (longest) first; a directory that holds anything else stays.
        if ((${#dirs[@]})); then
            while read -r path; do
                rmdir "$path" 2>/dev/null || true
            done < <(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
        fi
        rm -f "$manifest"
    else
        echo "install.sh: no install record for $dest: removing the files, keeping the directories" >&2
        while read -r path; do
            if [[ -e $dest/$path || -L $dest/$path ]]; then rm -f "$dest/$path"; n=$((n + 1)); fi
        done < <(layout)
        rmdir "$dest/$LIBDIR/cmake/nexus" 2>/dev/null || true
    fi
    echo "uninstalled NexusLite from $dest ($n files removed)"
}

do_dist() {
    local name
    name=nexuslite-$version-linux-$(uname -m)
    local out=$root/target/dist stage=$root/target/dist/stage
    rm -rf "$stage"
    mkdir -p "$stage"
    # A throwaway staging install: its record goes too, it is not an install to undo.
    DESTDIR=$stage PREFIX=$PREFIX LIBDIR=$LIBDIR bash "$0" install >/dev/null
    rm -f "$manifest_dir/$(printf '%s' "$stage$PREFIX" | sha256sum | cut -c1-16).manifest"
    mv "$stage$PREFIX" "$stage/$name"
    tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
    rm -rf "$stage"
    echo "$out/$name.tar.gz (for PREFIX=$PREFIX; unpack with tar -xzf FILE -C $PREFIX --strip-components=1)"
}

case ${1:-} in
    install) do_install ;;
    uninstall) do_uninstall ;;
    dist) do_dist ;;
    *) echo "usage: $0 install|uninstall|dist (variables PREFIX, DESTDIR, LIBDIR)" >&2; exit 2 ;;
esac
