#!/usr/bin/env bash
# Checks that every C++ file follows .clang-format (exit 1 naming the files
# that do not), or with --fix rewrites them.
#   tools/lint/format.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/../.."
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null || { echo "format.sh: $cf not found (tools/setup.sh installs clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.hpp' 2>/dev/null || find compiler runtime schemas tools tests -name '*.cpp' -o -name '*.h')
if [[ "${1:-}" == --fix ]]; then
  "$cf" -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "$f: not formatted (tools/lint/format.sh --fix)"
    bad=1
  fi
done
exit $bad
