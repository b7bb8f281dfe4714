# Sourced by tests/c/run.sh, tests/c/run_sanitized.sh and bindings/cpp/run_tests.sh: one policy
# for the memory checkers of the C and C++ suites.
#
# valgrind (VALGRIND): every leak kind but "still reachable" is an error, "possibly lost"
# included, so a passing run prints no leak records and a new one fails the suite. The only
# suppression is tests/sanitizers/valgrind.supp (the Rust standard library's handle of the
# main thread, see there).
#
# AddressSanitizer + UndefinedBehaviorSanitizer (SAN_FLAGS, for the C and C++ test code only;
# the library is the normal release libnexus, see tests/c/run_sanitized.sh for why):
# -fno-sanitize-recover=all turns every UB report into a failed run; LeakSanitizer is on.
# -O0, not the -O1 usually advised for speed: the instrumented code is only the test programs
# (their run time is the library's), every local stays in memory where ASan watches it, and
# GoogleTest's templates under -O1 with both sanitizers took 66 s to compile against 11 s.
_SAN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

VALGRIND=(valgrind --leak-check=full
    --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
    --suppressions="$_SAN_DIR/valgrind.supp" --error-exitcode=1)

SAN_FLAGS=(-g -O0 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)

# halt_on_error is ASan's default; strict_string_checks catches a string out-value read past
# its end; detect_stack_use_after_return catches a caller keeping a pointer into a dead frame.
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
