#!/bin/bash
# ppc split of torch.export programs (.pt2), checked by PyTorch itself: the
# samples (committed .pt2) with their specs and automatically, and the
# transformer families (exported here) by module path and automatically. Every
# stage must open with torch.export.load, and the stages chained by value name
# must reproduce the full program's outputs at a batch size other than the
# export's (tests/e2e/check_pt2_split.py). Bad input: a truncated archive, an
# unknown schema version, a higher-order operator - one line, exit 2, nothing
# written.
#
# Usage: tests/e2e/test_pt2_split.sh BUILD_DIR|PPC_BINARY OUT_TMP   (PPC_PYTHON: torch 2.x)
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0
W=$OUT_TMP/pt2_split
rm -rf "$W"
mkdir -p "$W"

check() {  # check MODEL OUT WHAT SPLIT_ARGS...
  local model=$1 out=$2 what=$3
  shift 3
  "$PPC" split "$model" "$@" -o "$out" >"$out.log" 2>&1 || { cat "$out.log" >&2; fail "ppc split $what"; }
  "$PY" "$E2E/check_pt2_split.py" "$model" "$out" --batch 3 >"$out.check" 2>&1 ||
    { cat "$out.check" >&2; fail "$what"; }
  echo "   $what: $(grep -c '^stage' "$out.check") stages, $(grep 'max |diff|' "$out.check" | sed 's/.*, //')"
}

step "samples, by their specs and automatically"
for s in mlp skip tinygpt convnet; do
  check "$ROOT/samples/$s/$s.pt2" "$W/$s" "$s by spec" --splits "$ROOT/samples/$s/spec.json"
  check "$ROOT/samples/$s/$s.pt2" "$W/${s}_auto" "$s auto 3 stages" --stages 3
done

step "transformer families, by module path and automatically"
for f in gpt2 bert t5 llama; do
  "$PY" "$E2E/export_pt2.py" "$W" family "$f" >"$W/export_$f.log" 2>&1 || { cat "$W/export_$f.log" >&2; fail "export $f"; }
  check "$W/$f.pt2" "$W/${f}_spec" "$f by module path" --splits "$W/${f}_spec.json"
  check "$W/$f.pt2" "$W/${f}_auto" "$f auto 4 stages" --stages 4
done

step "bad input: one line, exit code 2, nothing written"
expect_refusal() {  # expect_refusal WHAT EXPECTED MODEL
  local what=$1 want=$2 model=$3 rc=0
  "$PPC" split "$model" --stages 2 -o "$W/refused" >"$W/refused.out" 2>"$W/refused.err" || rc=$?
  [ "$rc" -eq 2 ] || { cat "$W/refused.err" >&2; fail "$what: exit code $rc, expected 2"; }
  [ "$(wc -l <"$W/refused.err")" -eq 1 ] || { cat "$W/refused.err" >&2; fail "$what: not one line"; }
  grep -q -- "$want" "$W/refused.err" || { cat "$W/refused.err" >&2; fail "$what: no '$want'"; }
  [ ! -e "$W/refused" ] || fail "$what: left $W/refused behind"
  echo "   $what: $(cat "$W/refused.err")"
}
head -c 100000 "$ROOT/samples/tinygpt/tinygpt.pt2" >"$W/truncated.pt2"
expect_refusal "truncated archive" "not a zip archive" "$W/truncated.pt2"
"$PY" - "$ROOT/samples/skip/skip.pt2" "$W/v99.pt2" <<'PYEOF'
import json, sys, zipfile
src, dst = sys.argv[1:]
with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
    for i in a.infolist():
        data = a.read(i)
        if i.filename.endswith("models/model.json"):
            p = json.loads(data)
            p["schema_version"]["major"] = 99
            data = json.dumps(p).encode()
        b.writestr(i.filename, data)
PYEOF
expect_refusal "unknown schema version" "schema version 99" "$W/v99.pt2"
"$PY" "$E2E/export_pt2.py" "$W" cond >"$W/export_cond.log" 2>&1 || { cat "$W/export_cond.log" >&2; fail "export cond"; }
expect_refusal "higher-order operator" "arguments of kind 'as_graph'" "$W/cond.pt2"
echo "PASS (${SECONDS}s)"
