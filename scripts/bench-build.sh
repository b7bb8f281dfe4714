# Sourced by the benchmark scripts: build_bench ROOT SRC OUT [FLAGS...] compiles the C
# harness SRC against ROOT's static libnexus.a (after `make lib` in ROOT) and the system
# SQLite, with warnings as errors, into OUT; FLAGS go last to gcc (-std=c99 overrides the
# default -std=c11; -lpthread). Exports PKG_CONFIG_PATH with ROOT's pkgconfig first.
# NEXUS_PROFILE=profiling links target/profiling/libnexus.a instead (`cargo build --profile
# profiling --lib`: the release code with line tables, for perf and callgrind; the release
# profile has no debug info).
# bench_machine DIR prints the machine block the reports share.
build_bench() {
    local root=$1 src=$2 out=$3
    shift 3
    local NEXUS_STATIC cflags
    export PKG_CONFIG_PATH=$root/target/release/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
    read -r -a NEXUS_STATIC <<<"$(pkg-config --libs --static nexus | sed "s#-lnexus#$root/target/${NEXUS_PROFILE:-release}/libnexus.a#")"
    read -r -a cflags <<<"$(pkg-config --cflags nexus)"
    gcc -std=c11 -O2 -Wall -Wextra -Werror "${cflags[@]}" "$src" \
        "${NEXUS_STATIC[@]}" $(pkg-config --libs sqlite3) "$@" -o "$out"
}

# bench_machine DIR: the machine block of a report (CPU, cores, memory, kernel, compilers,
# SQLite, the filesystem of the work directory DIR), as markdown lines.
bench_machine() {
    local cpu sqlite_version
    cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
    sqlite_version=$(pkg-config --modversion sqlite3 2>/dev/null || echo unknown)
    echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB memory,"
    echo "$(uname -sr), $(gcc --version | head -n 1), $(rustc --version), SQLite $sqlite_version"
    echo "(system library, journal_mode=WAL). Filesystem of the work directory: $(df -T "$1" | awk 'NR==2 {print $2}')."
    echo "The machine is shared with other jobs, so absolute numbers move between runs."
}
