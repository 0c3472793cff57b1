#!/usr/bin/env bash
# Golden test: for every case in cases.txt, split the sample and compare the
# manifest and the `ppc inspect` text with tests/golden/<case>/. Also checks
# that splitting twice gives a byte-identical out/ (stages included). A case
# with options after its spec (`--costs PROFILE.json`) also compares what
# `ppc split` printed (summary.txt: the costs and the predicted step).
#
#   check_goldens.sh PPC REPO_ROOT [TORCH_VERSION]    compare (CI)
#   PPC_UPDATE_GOLDENS=1 check_goldens.sh ...          rewrite the goldens; review the diff!
#
# A TorchScript stage's bytes depend on the LibTorch that writes it. The
# goldens hold the digests that LibTorch 1.13 (build/) writes; under another
# LibTorch (TORCH_VERSION, e.g. 2.11.0 for build-torch2/) the .pt digests are
# masked in manifest.json and inspect.txt, and compared instead with
# tests/golden/<case>/stages-torch-<major.minor>.txt (also golden).
set -euo pipefail
ppc=$1
root=$2
torch_mm=$(echo "${3:-1.13}" | cut -d. -f1,2)
golden="$root/tests/golden"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
# The artifact digests of TorchScript stages, in manifest.json and inspect.txt.
mask_pt_digests() {
  sed -E -e '/"artifact": "stage[0-9]+\.pt"/{n;s/"sha256": "[0-9a-f]{64}"/"sha256": "<masked>"/}' \
         -e 's/^(stage [0-9]+  stage[0-9]+\.pt  sha256 )[0-9a-f]{64}/\1<masked>/'
}
while read -r name model spec extra; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  n=$((n + 1))
  # shellcheck disable=SC2086  # extra: options, split into words
  (cd "$root" && "$ppc" split "$model" --splits "$spec" $extra -o "$tmp/$name" >"$tmp/$name.summary" 2>"$tmp/$name.notes")
  sed -i "s|$tmp/|OUT/|g" "$tmp/$name.summary"
  # shellcheck disable=SC2086
  (cd "$root" && "$ppc" split "$model" --splits "$spec" $extra -o "$tmp/$name.again" >/dev/null 2>/dev/null)
  if ! diff -r "$tmp/$name" "$tmp/$name.again" >/dev/null; then
    echo "FAIL $name: two runs of ppc split differ (output is not deterministic)"
    fail=1
  fi
  "$ppc" inspect "$tmp/$name" > "$tmp/$name.inspect.txt"
  masked=0
  if [[ "$model" == *.pt && "$torch_mm" != 1.13 ]]; then
    masked=1
    digests="$golden/$name/stages-torch-$torch_mm.txt"
    grep -E '^stage [0-9]+  stage[0-9]+\.pt  sha256 ' "$tmp/$name.inspect.txt" >"$tmp/$name.digests"
    if [[ "${PPC_UPDATE_GOLDENS:-0}" == 1 ]]; then
      cp "$tmp/$name.digests" "$digests"
      echo "updated $name (stage digests under LibTorch $torch_mm)"
      continue
    fi
    if [[ ! -f "$digests" ]]; then
      echo "FAIL $name: missing golden $digests (run with PPC_UPDATE_GOLDENS=1 and review)"
      fail=1
    elif ! diff -u "$digests" "$tmp/$name.digests"; then
      echo "FAIL $name: the stage digests under LibTorch $torch_mm differ from the golden"
      fail=1
    fi
  fi
  if [[ "${PPC_UPDATE_GOLDENS:-0}" == 1 ]]; then
    mkdir -p "$golden/$name"
    cp "$tmp/$name/manifest.json" "$golden/$name/manifest.json"
    cp "$tmp/$name.inspect.txt" "$golden/$name/inspect.txt"
    cp "$tmp/$name.notes" "$golden/$name/notes.txt"
    [[ -n "$extra" ]] && cp "$tmp/$name.summary" "$golden/$name/summary.txt"
    echo "updated $name"
    continue
  fi
  files="manifest.json inspect.txt notes.txt"
  [[ -n "$extra" ]] && files="$files summary.txt"
  for f in $files; do
    case $f in
      manifest.json) got="$tmp/$name/manifest.json" ;;
      inspect.txt) got="$tmp/$name.inspect.txt" ;;
      notes.txt) got="$tmp/$name.notes" ;;
      summary.txt) got="$tmp/$name.summary" ;;
    esac
    if [[ ! -f "$golden/$name/$f" ]]; then
      echo "FAIL $name: missing golden $golden/$name/$f (run with PPC_UPDATE_GOLDENS=1 and review)"
      fail=1
    elif ((masked)) && ! diff -u <(mask_pt_digests <"$golden/$name/$f") <(mask_pt_digests <"$got"); then
      echo "FAIL $name: $f differs from the golden (.pt digests masked; if intended: PPC_UPDATE_GOLDENS=1 under LibTorch 1.13, then review the diff)"
      fail=1
    elif ((!masked)) && ! diff -u "$golden/$name/$f" "$got"; then
      echo "FAIL $name: $f differs from the golden (if intended: PPC_UPDATE_GOLDENS=1, then review the diff)"
      fail=1
    fi
  done
done < "$golden/cases.txt"
[[ $fail == 0 ]] && echo "goldens: $n cases match"
exit $fail
