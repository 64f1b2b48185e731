#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with ASan + UBSan,
# and runs every unit and integration test with ctest; then builds the fuzz
# flavour (clang, libFuzzer) and runs its smokes and regression inputs
# (tests/fuzz, docs/security.md "Fuzzing"). Arguments go to both ctest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh asan
scripts/build.sh fuzz
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rc=0
ctest --test-dir build/asan --output-on-failure --timeout 600 -j 2 "$@" || rc=$?
ctest --test-dir build/fuzz --output-on-failure --timeout 600 -j 2 "$@" || rc=$?
exit "$rc"
