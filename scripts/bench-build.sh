# Sourced by the benchmark scripts: build_bench ROOT SRC OUT [FLAGS...] compiles the C
# harness SRC against ROOT's static libnexus.a (after `make lib` in ROOT) and the system
# SQLite, with warnings as errors, into OUT; FLAGS go last to gcc (-std=c99 overrides the
# default -std=c11; -lpthread). Exports PKG_CONFIG_PATH with ROOT's pkgconfig first.
build_bench() {
    local root=$1 src=$2 out=$3
    shift 3
    local NEXUS_STATIC cflags
    export PKG_CONFIG_PATH=$root/target/release/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
    read -r -a NEXUS_STATIC <<<"$(pkg-config --libs --static nexus | sed "s#-lnexus#$root/target/release/libnexus.a#")"
    read -r -a cflags <<<"$(pkg-config --cflags nexus)"
    gcc -std=c11 -O2 -Wall -Wextra -Werror "${cflags[@]}" "$src" \
        "${NEXUS_STATIC[@]}" $(pkg-config --libs sqlite3) "$@" -o "$out"
}
