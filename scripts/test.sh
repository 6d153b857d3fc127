#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks the style, builds
# every build type we ship with gcc's warnings as errors, runs every test on
# the Release build (the one the README builds, in build/), then builds with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs every test there too.
# Exit status: 0 only if everything passes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "== style (clang-format) =="
scripts/format.sh --check

echo "== build (Release, as the README) and test =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" >/dev/null
ctest --test-dir build --output-on-failure --timeout 900

# The other build types compile with other optimisation levels, and gcc
# warns differently at each (-O3 found format-truncation and
# maybe-uninitialized that -O2 did not): every one must build.
for type in RelWithDebInfo Debug MinSizeRel; do
	echo "== build ($type) =="
	cmake -S . -B "build-types/$type" -DCMAKE_BUILD_TYPE="$type" >/dev/null
	cmake --build "build-types/$type" -j"$jobs" >/dev/null
done

echo "== build with ASan + UBSan and test =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSAMEPAGE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure --timeout 1800
