#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test,
# then builds again with AddressSanitizer + UndefinedBehaviorSanitizer and
# runs every test there too. Exit status: 0 only if both runs pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "== style (clang-format) =="
scripts/format.sh --check

echo "== build (RelWithDebInfo) and test =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs" >/dev/null
ctest --test-dir build --output-on-failure --timeout 900

echo "== build with ASan + UBSan and test =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSAMEPAGE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure --timeout 1800
