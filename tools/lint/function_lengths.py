#!/usr/bin/env python3
"""Lengths of the C++ function bodies under the given folders.

    tools/lint/function_lengths.py [--max N] [--top K] DIR...

A function is a brace block at namespace or class scope whose opening brace
follows a parameter list (`) {`, `) const {`, `) -> T {`, a constructor's
initializer list). Lambdas and nested blocks count toward the function that
holds them. Its length is the number of lines from the line of its name to its
closing brace. With --max, exits 1 when a function is longer and its opening
line (or the line before it) does not carry the comment `// long-function: <why>`.
"""
import argparse
import os
import re
import sys

EXTS = (".cpp", ".cc", ".h", ".hpp")


def strip(text):
    """Blanks comments, string and char literals, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            k = text.find("(", i + 2)
            delim = text[i + 2:k]
            end = text.find(")" + delim + '"', k)
            j = n if end < 0 else end + len(delim) + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator 1'000
                out.append(c)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c if j - i >= 2 else c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


SCOPE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^;{}()]*$")
FUNC_TAIL = re.compile(r"\)\s*(const|noexcept|override|final|mutable|&|&&|\s)*(->[^{;]*)?$")
INIT_LIST = re.compile(r"\)\s*:\s*[\w:<>,\s]*[\w>]\s*[({]")


def blank_preprocessor(text):
    """Blanks preprocessor lines (and their continuations), keeping newlines."""
    out, cont = [], False
    for line in text.split("\n"):
        directive = cont or line.lstrip().startswith("#")
        cont = directive and line.rstrip().endswith("\\")
        out.append(" " * len(line) if directive else line)
    return "\n".join(out)


def functions(path):
    raw = open(path, encoding="utf-8", errors="replace").read()
    text = blank_preprocessor(strip(raw))
    lines = raw.split("\n")
    found = []
    # stack of ("scope"|"func"|"block", start_index, name_line)
    stack = []
    stmt_start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c in ";":
            if not stack or stack[-1][0] == "scope":
                stmt_start = i + 1
        elif c == "{":
            in_func = any(k == "func" for k, _, _ in stack)
            if in_func:
                stack.append(("block", i, 0))
            else:
                head = text[stmt_start:i]
                head_flat = " ".join(head.split())
                if SCOPE.search(head_flat) or head_flat.startswith("extern \"") or head_flat.endswith("="):
                    stack.append(("scope" if not head_flat.endswith("=") else "block", i, 0))
                elif FUNC_TAIL.search(head_flat) or INIT_LIST.search(head_flat):
                    # the line of the function's name: first non-blank line of the head
                    off = stmt_start + (len(head) - len(head.lstrip()))
                    name_line = text.count("\n", 0, off) + 1
                    m = re.search(r"([\w:~<>=!+\-*/\[\]]+)\s*\(", head_flat)
                    stack.append(("func", i, (name_line, m.group(1) if m else "?")))
                else:
                    stack.append(("block", i, 0))
            stmt_start = i + 1
        elif c == "}":
            if stack:
                kind, _, info = stack.pop()
                if kind == "func" and not any(k == "func" for k, _, _ in stack):
                    name_line, name = info
                    end_line = text.count("\n", 0, i) + 1
                    marked = any("long-function:" in lines[k]
                                 for k in range(max(0, name_line - 3), min(len(lines), name_line + 1)))
                    found.append((end_line - name_line + 1, path, name_line, name, marked))
            if not stack or stack[-1][0] == "scope":
                stmt_start = i + 1
        i += 1
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--max", type=int, default=0)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    found = []
    for d in a.dirs:
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if f.endswith(EXTS):
                    found += functions(os.path.join(root, f))
    found.sort(key=lambda t: (-t[0], t[1], t[2]))
    for n, path, line, name, marked in found[:a.top]:
        print(f"{n:5d}  {path}:{line}  {name}{'  (long-function)' if marked else ''}")
    if a.max:
        over = [t for t in found if t[0] > a.max and not t[4]]
        marked = [t for t in found if t[0] > a.max and t[4]]
        for n, path, line, name, _ in over:
            print(f"{path}:{line}: {name} is {n} lines, over {a.max}", file=sys.stderr)
        print(f"{len(found)} functions; {len(over)} over {a.max} lines; {len(marked)} marked long-function")
        return 1 if over else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
