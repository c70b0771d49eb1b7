#!/usr/bin/env python3
"""test_layers.py LAYOUT.md LIB.a... — the libraries keep docs/layout.md's order.

docs/layout.md lists every source file in dependency order (its ```layers block):
a file may call, or name the data of, only the files listed before it. This reads
what each object file of the static libraries defines and uses (nm) and fails on
every reference that goes to a file listed later (a back-reference: a pass that
calls back into an earlier one, a loop between two files), and on every object of
the build the page does not list. Files listed but not built (CUDA's, or its stub)
are fine. Exit 77 (skipped) without nm.
"""
import fnmatch
import os
import re
import shutil
import subprocess
import sys


def read_layers(path):
    """{source: line number} and {source: [glob of data it may register]}."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^```layers\n(.*?)^```", text, re.S | re.M)
    if not m:
        sys.exit(f"{path}: no ```layers block")
    rank, registers = {}, {}
    for n, line in enumerate(m.group(1).splitlines(), 1):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        files, globs = line, []
        if "registers" in line:
            k = line.index("registers")
            files, globs = line[:k], line[k + 1:]
        for f in files:
            if f in rank:
                sys.exit(f"{path}: {f} is listed twice")
            rank[f] = n
            registers[f] = globs
    return rank, registers


def source_of(lib, member):
    """The source file an archive member was compiled from."""
    name = member.rsplit("/", 1)[-1]
    name = re.sub(r"\.o(bj)?$", "", name)
    if name.startswith("meson-generated_.._"):  # flex / bison output
        base = name[len("meson-generated_.._"):]
        return "compiler/" + {"lexer.c": "lexer.l", "parser.c": "parser.y"}.get(base, base)
    if name.startswith(".._kernels_"):
        return "kernels/" + name[len(".._kernels_"):]
    top = "runtime" if "pprun" in lib.rsplit("/", 1)[-1] else "compiler"
    return f"{top}/{name}"


def symbols(libs):
    """{symbol: (source, is_function)} defined, and [(source, symbol)] used."""
    defined, used = {}, []
    line_re = re.compile(r"^(.*?\.a):(.*?):\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z?])\s+(\S+)$")
    for lib in libs:
        out = subprocess.run(["nm", "-A", lib], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            m = line_re.match(line)
            if not m:
                continue
            _, member, kind, sym = m.groups()
            src = source_of(lib, member)
            if kind == "U":
                used.append((src, sym))
            elif kind.isupper() or kind in "vw":
                defined.setdefault(sym, (src, kind in "TW"))
    return defined, used


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if not shutil.which("nm"):
        print("nm not found: skipped")
        return 77
    layout_path, libs = sys.argv[1], sys.argv[2:]
    rank, registers = read_layers(layout_path)
    layout = os.path.join(*os.path.normpath(layout_path).split(os.sep)[-2:])  # docs/layout.md
    defined, used = symbols(libs)
    errors = []
    sources = {src for src, _ in used} | {src for src, _ in defined.values()}
    for src in sorted(sources - set(rank)):
        errors.append(f"{src} is built but not listed in {layout}")
    for src, sym in sorted(set(used)):
        if sym not in defined:
            continue  # the C library, CUDA, check
        to, is_function = defined[sym]
        if to == src or src not in rank or to not in rank or rank[to] <= rank[src]:
            continue
        if not is_function and any(fnmatch.fnmatchcase(sym, g) for g in registers[src]):
            continue  # a registry naming a descriptor listed later
        what = "calls" if is_function else "names the data"
        errors.append(f"{src} {what} {sym} of {to}, which {layout} lists after it")
    for e in errors:
        print(e)
    print(f"{len(rank)} files in order, {len(used)} references checked, {len(errors)} out of order")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
