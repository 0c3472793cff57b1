# Shared prologue of the e2e shell tests. Source it with the script's own
# arguments: `source "$(dirname "$0")/lib.sh" "$@"`. It checks for exactly
# two arguments (BUILD_DIR|PPC_BINARY OUT_TMP) and sets
#   ROOT     the repository root
#   PY       the Python with torch/onnx (/usr/bin/python3)
#   PPC      the absolute path of the ppc binary
#   OUT_TMP  an absolute, existing scratch directory
if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR|PPC_BINARY OUT_TMP" >&2
  exit 2
fi
OUT_TMP=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
# BUILD_DIR holds the ppc binary; the path of the binary itself works too.
if [ -f "$1" ]; then
  PPC="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
else
  PPC="$(cd "$1" && pwd)/ppc"
fi
if [ ! -x "$PPC" ]; then
  echo "$0: no ppc binary at $PPC" >&2
  exit 2
fi
mkdir -p "$OUT_TMP"
OUT_TMP=$(cd "$OUT_TMP" && pwd)
