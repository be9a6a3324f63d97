#!/usr/bin/env python3
"""Size limits of the C++ sources: no file over 500 lines, no function over 80.

usage: scripts/check_code_size.py [ROOT]   (default: the repository root)

A function may be longer when the comment block right above it says why, in a
line containing "long:" (e.g. "// long: one table of every GGUF key").
Generated and vendored files are not ours: only tracked *.cc / *.h under the
project's source folders are read. Exit 1 listing every violation.
"""
import os
import re
import subprocess
import sys

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
FOLDERS = ("common", "server", "workers", "client", "tests", "bench")
SKIP_SUFFIX = (".inc",)


def strip(line, state):
    """The line without comments and string/char literals; state: in block comment."""
    out, i = [], 0
    while i < len(line):
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"], i = False, j + 2
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"], i = True, i + 2
            continue
        if c in "\"'":
            if c == '"' and i > 0 and line[i - 1] == "R" and line.find("(", i) > i:  # raw string
                delim = line[i + 1:line.find("(", i)]
                end = line.find(")" + delim + '"', i)
                i = len(line) if end < 0 else end + len(delim) + 2
                out.append('""')
                continue
            j = i + 1
            while j < len(line) and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


HEAD = re.compile(r"\)\s*(const)?\s*(noexcept)?\s*(override)?\s*(->[^{]*)?\s*$")
NOT_FUNCTION = re.compile(r"^\s*(namespace|class|struct|enum|union|extern)\b|=\s*$|\]\s*\(.*\)\s*(mutable)?\s*(->[^{]*)?$")


def functions(lines):
    """(name line, first line, last line) of each outermost function body."""
    state = {"block": False}
    depth, pending, found, stack = 0, "", [], []
    for n, raw in enumerate(lines, 1):
        code = strip(raw, state)
        for ch in code:
            if ch == "{":
                head = pending.strip()
                is_fn = bool(HEAD.search(head)) and not NOT_FUNCTION.search(head) and \
                    not any(s[1] for s in stack)
                stack.append((n, is_fn))
                depth += 1
                pending = ""
            elif ch == "}":
                if stack:
                    start, is_fn = stack.pop()
                    if is_fn:
                        found.append((start, n))
                depth -= 1
                pending = ""
            elif ch == ";":
                pending = ""
            else:
                pending += ch
        pending += " "
    return found


def reason_above(lines, start):
    i = start - 2
    while i >= 0 and (lines[i].strip().endswith(")") or lines[i].strip().endswith(",")
                      or "(" in lines[i] and not lines[i].strip().startswith("//")):
        i -= 1  # the rest of the signature
    while i >= 0 and lines[i].strip().startswith("//"):
        if "long:" in lines[i]:
            return True
        i -= 1
    return False


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = subprocess.run(["git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard",
                            *FOLDERS], capture_output=True, text=True, check=True).stdout.split()
    bad = []
    for rel in sorted(files):
        if not rel.endswith((".cc", ".h")) or rel.endswith(SKIP_SUFFIX):
            continue
        path = os.path.join(root, rel)
        if not os.path.exists(path):
            continue
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
        if len(lines) - 1 > MAX_FILE_LINES:
            bad.append(f"{rel}: {len(lines) - 1} lines (limit {MAX_FILE_LINES})")
        for start, end in functions(lines):
            if end - start + 1 > MAX_FUNCTION_LINES and not reason_above(lines, start):
                bad.append(f"{rel}:{start}: function of {end - start + 1} lines "
                           f"(limit {MAX_FUNCTION_LINES}; say why in a '// long:' comment above it)")
    for b in bad:
        print(b)
    print(f"check_code_size: {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
