#!/usr/bin/env bash
# clang-format over every tracked C file (.clang-format at the top).
#   scripts/format.sh          reformat in place
#   scripts/format.sh --check  list files that are not formatted; exit 1 if any
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
for f in $(git ls-files '*.c' '*.h'); do
	if [ "${1:-}" = --check ]; then
		if ! clang-format "$f" | cmp -s - "$f"; then
			echo "not formatted: $f"
			bad=1
		fi
	else
		clang-format -i "$f"
	fi
done
exit $bad
