#!/usr/bin/env python3
"""Every ppcc and pprun command the README shows works as written.

Usage: test_readme.py README.md BUILD_ROOT

The README's shell blocks are run in order, one command a line, in a
scratch directory that holds the repository's schedules/, with the build's
ppcc and pprun first on PATH (as the README tells a new user to set it).
A console block (`$ command` then its output) must print exactly that
output.  Lines that are not ppcc or pprun (tools/..., export, meson) set
up the machine and are not run here: CI runs tools/test itself.

A command that needs GPUs (--backend cuda, --nproc without --backend cpu) must, where the
machine cannot honour it, be refused with the documented reason (exit 1
naming the GPU or CUDA), never a usage error: the README may only show
commands whose words are right.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

GPU_REFUSAL = re.compile(r"pprun: error: .*(GPU|CUDA|cuda backend)")


def blocks(text):
    """(language, [lines]) for every fenced block."""
    out, lang, body = [], None, []
    for line in text.splitlines():
        m = re.match(r"^```(\w*)\s*$", line)
        if m and lang is None:
            lang, body = m.group(1) or "text", []
        elif line.startswith("```") and lang is not None:
            out.append((lang, body))
            lang = None
        elif lang is not None:
            body.append(line)
    return out


def commands(text):
    """(command, expected output or None) in README order."""
    cmds = []
    for lang, body in blocks(text):
        if lang == "sh":
            for line in body:
                cmd = re.sub(r"\s+#.*$", "", line).strip()
                if cmd and not cmd.startswith("#"):
                    cmds.append((cmd, None))
        elif lang == "console":
            cmd, shown = None, []
            for line in body:
                if line.startswith("$ "):
                    if cmd:
                        cmds.append((cmd, "\n".join(shown)))
                    cmd, shown = line[2:], []
                else:
                    shown.append(line)
            if cmd:
                cmds.append((cmd, "\n".join(shown)))
    return cmds


def main():
    readme, build = sys.argv[1], os.path.abspath(sys.argv[2])
    src = os.path.dirname(os.path.abspath(readme))
    text = open(readme, encoding="utf-8").read()
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.join(build, "compiler"), os.path.join(build, "runtime"), env["PATH"]])
    checks = fails = 0
    ran = 0
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(os.path.join(src, "schedules"), os.path.join(tmp, "schedules"))
        for cmd, shown in commands(text):
            prog = cmd.split()[0]
            if prog not in ("ppcc", "pprun"):
                continue
            ran += 1
            r = subprocess.run(cmd, shell=True, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
            said = (r.stdout + r.stderr).strip()
            checks += 1
            needs_gpu = "--backend cuda" in cmd or ("--nproc" in cmd and "--backend cpu" not in cmd)
            if r.returncode == 0:
                ok = True
            elif needs_gpu and r.returncode == 1 and GPU_REFUSAL.search(r.stderr):
                ok = True  # the words are right; this machine has not the GPUs
            else:
                ok = False
            if not ok:
                fails += 1
                print(f"FAIL: README command `{cmd}` exited {r.returncode}:\n    " + said.replace("\n", "\n    "))
            elif shown is not None:
                checks += 1
                if r.stdout.rstrip("\n") != shown:
                    fails += 1
                    print(f"FAIL: README shows for `{cmd}`:\n{shown}\nbut it prints:\n{r.stdout}")
    checks += 1
    if ran < 10:  # the README's examples were not found: the parser, not the README, is wrong
        fails += 1
        print(f"FAIL: only {ran} ppcc/pprun commands found in {readme}")
    print(f"test_readme: {ran} commands, {checks} checks, {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
