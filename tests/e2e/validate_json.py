#!/usr/bin/python3
"""Validate JSON documents against a JSON Schema (draft 2020-12).

Usage:  /usr/bin/python3 tests/e2e/validate_json.py SCHEMA FILE...

Exits 1 and prints every violation (file, JSON pointer, message) when a file
does not validate.  Needs jsonschema (apt-get install -y python3-jsonschema).
"""

import json
import sys

try:
    from jsonschema import Draft202012Validator
except ImportError:
    sys.exit("validate_json: python module jsonschema is missing (apt-get install -y python3-jsonschema)")


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: validate_json.py SCHEMA FILE...")
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema)
    bad = 0
    for path in sys.argv[2:]:
        with open(path) as f:
            doc = json.load(f)
        errs = sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        for e in errs:
            print(f"{path}: /{'/'.join(map(str, e.absolute_path))}: {e.message}", file=sys.stderr)
        bad += bool(errs)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
