# lib.sh — the harness the shell tests share, sourced after they read
# their arguments (paths given to it must be absolute: it moves into a
# scratch directory, removed on exit).  Each check bumps $checks; fail
# reports one and counts it; finish prints the tally and sets the status.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

fails=0 checks=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
# expect STATUS PATTERN -- command...: runs it, checks its exit status and
# that stdout+stderr (left in out.txt) match the extended regex PATTERN;
# an empty PATTERN checks the status only.
expect() {
    local want=$1 pattern=$2
    shift 3
    checks=$((checks + 1))
    "$@" >out.txt 2>&1
    local got=$?
    if [ "$got" != "$want" ]; then
        fail "$* exited $got, want $want"; sed 's/^/    /' out.txt >&2; return
    fi
    if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" out.txt; then
        fail "$* output does not match /$pattern/"; sed 's/^/    /' out.txt >&2
    fi
}
# finish NAME: the last command of a test; exits 1 if any check failed.
finish() {
    echo "$1: $checks checks, $fails failed"
    [ "$fails" -eq 0 ]
}
