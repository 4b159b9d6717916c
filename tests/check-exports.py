#!/usr/bin/env python3
"""The 'symbols' test: three lists of the public API must agree exactly.

    check-exports.py LIBSEGMENT.so lib/libsegment.map include/

1. the dynamic symbols the built shared library defines (nm -D --defined-only),
2. the names in the linker version script,
3. the functions declared with SEG_API in the public headers.

Each exported symbol must also carry a LIBSEGMENT_x.y version.  NM in the
environment overrides the nm program.
"""
import os
import pathlib
import re
import subprocess
import sys


def exported(lib):
    nm = os.environ.get("NM") or "nm"
    out = subprocess.run([nm, "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    names, unversioned = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, sym = parts[-2], parts[-1]
        name, _, version = sym.partition("@")
        version = version.lstrip("@")
        if kind == "A" and re.fullmatch(r"LIBSEGMENT_[0-9.]+", name):
            continue  # the version nodes themselves
        names.add(name)
        if not version.startswith("LIBSEGMENT_"):
            unversioned.add(name)
    return names, unversioned


def map_names(path):
    text = pathlib.Path(path).read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"#[^\n]*", " ", text)
    names, dups = set(), set()
    for node in re.finditer(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*[\w.]*\s*;", text, flags=re.S):
        body = node.group(2)
        body = re.split(r"\blocal\s*:", body)[0]
        body = re.sub(r"\bglobal\s*:", " ", body)
        for entry in body.split(";"):
            entry = entry.strip()
            if not entry:
                continue
            if entry in names:
                dups.add(entry)
            names.add(entry)
    return names, dups


def header_names(incdir):
    names, dups = set(), set()
    for path in sorted(pathlib.Path(incdir).rglob("*.h")):
        text = path.read_text()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
        for m in re.finditer(r"\bSEG_API\b([^;{}]*?)\b([A-Za-z_]\w*)\s*\(", text):
            name = m.group(2)
            if name in names:
                dups.add(name)
            names.add(name)
    return names, dups


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    lib, mapfile, incdir = sys.argv[1:]
    so, unversioned = exported(lib)
    mapped, map_dups = map_names(mapfile)
    declared, decl_dups = header_names(incdir)

    problems = []

    def report(what, names):
        if names:
            problems.append("%s:\n    %s" % (what, "\n    ".join(sorted(names))))

    report("exported by the library but not in the map", so - mapped)
    report("in the map but not exported by the library", mapped - so)
    report("declared SEG_API in include/ but not in the map", declared - mapped)
    report("in the map but not declared SEG_API in include/", mapped - declared)
    report("exported without a LIBSEGMENT_ version", unversioned)
    report("listed twice in the map", map_dups)
    report("declared twice in include/", decl_dups)
    if not declared:
        problems.append("no SEG_API declarations found under %s" % incdir)

    if problems:
        print("symbols: the library, %s and %s disagree" % (mapfile, incdir))
        print("\n".join(problems))
        return 1
    print("symbols: %d exported functions; library, map and headers agree" % len(so))
    return 0


if __name__ == "__main__":
    sys.exit(main())
