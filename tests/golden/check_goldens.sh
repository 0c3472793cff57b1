#!/usr/bin/env bash
# Golden test: for every case in cases.txt, split the sample and compare the
# manifest and the `ppc inspect` text with tests/golden/<case>/. Also checks
# that splitting twice gives a byte-identical out/ (stages included).
#
#   check_goldens.sh PPC REPO_ROOT            compare (CI)
#   PPC_UPDATE_GOLDENS=1 check_goldens.sh ...  rewrite the goldens; review the diff!
set -euo pipefail
ppc=$1
root=$2
golden="$root/tests/golden"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
while read -r name model spec; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  n=$((n + 1))
  (cd "$root" && "$ppc" split "$model" --splits "$spec" -o "$tmp/$name" >/dev/null 2>"$tmp/$name.notes")
  (cd "$root" && "$ppc" split "$model" --splits "$spec" -o "$tmp/$name.again" >/dev/null 2>/dev/null)
  if ! diff -r "$tmp/$name" "$tmp/$name.again" >/dev/null; then
    echo "FAIL $name: two runs of ppc split differ (output is not deterministic)"
    fail=1
  fi
  "$ppc" inspect "$tmp/$name" > "$tmp/$name.inspect.txt"
  if [[ "${PPC_UPDATE_GOLDENS:-0}" == 1 ]]; then
    mkdir -p "$golden/$name"
    cp "$tmp/$name/manifest.json" "$golden/$name/manifest.json"
    cp "$tmp/$name.inspect.txt" "$golden/$name/inspect.txt"
    cp "$tmp/$name.notes" "$golden/$name/notes.txt"
    echo "updated $name"
    continue
  fi
  for f in manifest.json inspect.txt notes.txt; do
    case $f in
      manifest.json) got="$tmp/$name/manifest.json" ;;
      inspect.txt) got="$tmp/$name.inspect.txt" ;;
      notes.txt) got="$tmp/$name.notes" ;;
    esac
    if [[ ! -f "$golden/$name/$f" ]]; then
      echo "FAIL $name: missing golden $golden/$name/$f (run with PPC_UPDATE_GOLDENS=1 and review)"
      fail=1
    elif ! diff -u "$golden/$name/$f" "$got"; then
      echo "FAIL $name: $f differs from the golden (if intended: PPC_UPDATE_GOLDENS=1, then review the diff)"
      fail=1
    fi
  done
done < "$golden/cases.txt"
[[ $fail == 0 ]] && echo "goldens: $n cases match"
exit $fail
