#!/usr/bin/env bash
# test_gpu_check.sh — tools/gpu-check's prebuilt path on the CPU, as a GPU
# session would run it (a bundle from tools/gpu-bundle, a fake nvidia-smi
# listing an H200): what lands in $OUT is what the device returns (at most
# 8 files, 2 folders deep, plain names), every result line is printed as it
# is produced, and a GPU that nvidia-smi shows but pprun cannot use is a
# failure, never a skip.  Also the library check that runs first: a library
# the binaries need is looked for in the Python's nvidia-* wheels (a fake
# python3 here), else named, and the run stops.
set -u
src=${PP_SOURCE_ROOT:?} build=${PP_BUILD_ROOT:?}
. "$(dirname "$0")/../lib.sh"

"$src/tools/gpu-bundle" --from "$build" --to "$PWD/bundle" >bundle.txt 2>&1 ||
    { cat bundle.txt; echo "gpu-bundle failed"; exit 1; }
cuda=0
"$build/runtime/pprun" --version | grep -q cuda && cuda=1

# fake nvidia-smi: `listed` says whether -L lists the GPU its --query-gpu names
fake_smi() { # DIR LISTED
    mkdir -p "$1"
    cat >"$1/nvidia-smi" <<EOF
#!/bin/sh
case "\$*" in
*query-gpu*) echo "NVIDIA H200, 580.159.04" ;;
*-L*) [ $2 = 1 ] && echo "GPU 0: NVIDIA H200 (UUID: GPU-0)" ;;
esac
exit 0
EOF
    chmod +x "$1/nvidia-smi"
}
fake_smi "$PWD/gpu" 1
fake_smi "$PWD/namedonly" 0

# gpu_check NAME PATH_PREFIX BUNDLE: runs it with OUT=NAME.out, output in NAME.txt
gpu_check() {
    local name=$1 path=$2 bundle=$3 t0=$SECONDS
    rm -rf "$name.out"
    OUT="$PWD/$name.out" PATH="$path:$PATH" "$src/tools/gpu-check" --prebuilt "$bundle" \
        >"$name.txt" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - t0)) s"
    return $rc
}
# what the device returns: at most 8 files, at most 2 folders down, plain names
check_out() { # DIR
    checks=$((checks + 1))
    local n bad deep
    n=$(find "$1" -type f | wc -l)
    deep=$(find "$1" -mindepth 4 | head -1)
    bad=$(find "$1" -mindepth 1 | sed "s|^$1/||" | grep -E '[^A-Za-z0-9._/-]' | head -1)
    [ "$n" -le 8 ] && [ -z "$deep" ] && [ -z "$bad" ] ||
        fail "$1: $n files (at most 8), too deep '$deep', odd name '$bad'"
    for f in results.md gpu-check-logs.tar.gz; do
        [ -s "$1/$f" ] || fail "$1/$f is missing or empty"
    done
}
# every line of results.md was printed (as produced: the output has them in order)
check_printed() { # NAME
    checks=$((checks + 1))
    grep -vxF -f "$1.txt" "$1.out/results.md" >missing.txt && fail "$1: results not printed: $(head -2 missing.txt)"
}

# expect_exit WANT NAME RC
expect_exit() {
    checks=$((checks + 1))
    [ "$3" = "$1" ] || { fail "gpu-check ($2) exited $3, want $1"; sed 's/^/    /' "$2.txt" >&2; }
}
if [ $cuda = 1 ]; then
    # A: an H200 is listed, CUDA cannot start here: gpu-check fails, does not skip
    gpu_check listed "$PWD/gpu" "$PWD/bundle"
    expect_exit 1 listed $?
    expect 0 '^## pprun on the GPU — NVIDIA H200' -- cat listed.out/results.md
    expect 0 '^- smoke: .*FAILED \(exit 1\): pprun: error: --backend cuda: (CUDA cannot start|no GPU)' -- cat listed.out/results.md
    expect 0 '^- \(a\) GPU tests: FAILED' -- cat listed.out/results.md
    checks=$((checks + 1))
    grep -q SKIPPED listed.out/results.md && fail "a GPU is listed, yet gpu-check reports a skip"
    expect 0 'smoke.txt' -- tar tzf listed.out/gpu-check-logs.tar.gz
    check_out listed.out
    check_printed listed
    # B: nvidia-smi names a GPU yet lists none: test_gpu.sh skips, and gpu-check calls
    # that skip a failure
    if [ ! -d /proc/driver/nvidia/gpus ]; then
        gpu_check namedonly "$PWD/namedonly" "$PWD/bundle"
        expect_exit 1 namedonly $?
        expect 0 '^- \(a\) GPU tests: FAILED: skipped although nvidia-smi shows a GPU' -- cat namedonly.out/results.md
        check_out namedonly.out
    fi
else
    gpu_check nocuda "$PWD/gpu" "$PWD/bundle"
    expect_exit 1 nocuda $?
    expect 0 'has no CUDA backend' -- cat nocuda.txt
    check_out nocuda.out
fi

# G: the whole of a GPU session's gpu-check, as far as a CPU can stand in for the GPU: the
# bundle's pprun runs each --backend cuda run on the CPU backend, and each tf32/bf16 run
# through the emulator (sums reversed, tf32 operands truncated), writing --dump as pprun
# does; the benchmarks' plans (plan_b*, plan_c*) it refuses at once.  The GPU tests must
# all pass and be judged, and the summary must name the rounding the stand-in applied.
if [ $cuda = 1 ]; then
    mkdir -p cpubundle
    cp -r bundle/. cpubundle/
    mv cpubundle/runtime/pprun cpubundle/runtime/pprun.real
    cat >cpubundle/runtime/pprun <<'EOF'
#!/usr/bin/env bash
here=$(dirname "$0")
case "$1" in --version) exec "$here/pprun.real" --version ;; esac
case "$1" in */plan_b*.json | */plan_c.json) echo "CPU stand-in: no benchmarks" >&2; exit 1 ;; esac
plan=$1 prec= dump= steps=1 args=()
shift
while [ $# -gt 0 ]; do
    case "$1" in
    --backend) args+=(--backend cpu); shift ;;
    --precision) prec=$2; shift ;;
    --dump) dump=$2; args+=("$1" "$2"); shift ;;
    --steps) steps=$2; args+=("$1" "$2"); shift ;;
    *) args+=("$1") ;;
    esac
    shift
done
[ -z "$prec" ] && exec "$here/pprun.real" "$plan" "${args[@]}"
# the emulator knows the MLP: a transformer's tf32/bf16 run stands in as fp32
grep -q '"kind": *"gpt"' "$plan" && exec "$here/pprun.real" "$plan" "${args[@]}"
em=(--steps "$steps" --precision "$prec" --sum reverse ${dump:+--dump "$dump"})
[ "$prec" = tf32 ] && em+=(--tf32 trunc)
exec "$here/../tests/runtime/precision_emulator" "$plan" "${em[@]}"
EOF
    chmod +x cpubundle/runtime/pprun
    gpu_check cpu "$PWD/gpu" "$PWD/cpubundle"
    expect_exit 1 cpu $? # the benchmarks and the kernels cannot run here
    expect 0 '^- smoke: 1F1B, 4 pipeline devices on one GPU, fp32, CUDA graph: check: .*: ok' -- cat cpu.out/results.md
    expect 0 '^- \(a\) GPU tests: [0-9]+ runs, 0 failed' -- cat cpu.out/results.md
    # each precision runs once per shipped MLP schedule and on the tensor-core case, judged;
    # and on the transformer's four precision cases (test_gpu.sh's gpt_precision), not judged
    n=$(($(grep -L '^model gpt' "$src"/schedules/*.pp | wc -l) + 1))
    expect 0 "^  largest tf32 relative error vs single-device training: [0-9.e-]+ over $((n + 4)) runs"' \(tolerance 2e-2\)' -- \
        cat cpu.out/results.md
    expect 0 "^- tf32 GEMM operands on this GPU, measured .*: truncated in $n, rounded to nearest in 0, not rounded \(no tensor cores\) in 0, no match in 0, of $n runs: cuBLAS truncates" -- \
        cat cpu.out/results.md
    expect 0 "^- bf16 runs matching their emulation \(round to nearest even\): $n of $n\$" -- cat cpu.out/results.md
    expect 0 'matches tf32, truncated$' -- cat cpu.out/test-gpu.txt
    check_out cpu.out
    check_printed cpu
fi

# E: bounded whatever hangs: a bundle whose pprun never returns on the plans matching
# PP_FAKE_HANG (but says its version, and fails at once on the others), under a total of
# 8 s: each phase is cut to what the total has left, and gpu-check ends within it and the
# last kill's grace, with what each phase found printed and in results.md.  E1: every run
# hangs (the phases after the smoke get no time); E2: the GPU tests' runs hang (inside
# test_gpu.sh's own limits, which must end with the limit over the whole script: none of
# the hanging runs may outlive gpu-check)
mkdir -p hangbundle
cp -r bundle/. hangbundle/
cat >hangbundle/runtime/pprun <<'EOF'
#!/bin/sh
case "$1" in --version) echo "pprun 0.1.0 (backends: cpu, cuda)"; exit 0 ;; esac
case "$1" in *$PP_FAKE_HANG*) echo $$ >>"$PP_FAKE_PIDS"; exec sleep 600 ;; esac
echo "fake pprun: no GPU here" >&2
exit 1
EOF
chmod +x hangbundle/runtime/pprun
for hang in .json probe.json; do
    name=hang${hang%.json}
    t0=$SECONDS
    : >$name.pids
    PP_FAKE_HANG=$hang PP_FAKE_PIDS=$PWD/$name.pids GPU_CHECK_SECONDS=8 gpu_check $name "$PWD/gpu" \
        "$PWD/hangbundle"
    expect_exit 1 $name $?
    checks=$((checks + 1))
    [ -s $name.pids ] || fail "$name: no run of the fake pprun hung"
    for pid in $(cat $name.pids); do
        if kill -0 "$pid" 2>/dev/null; then
            fail "$name: a hanging run (pid $pid) outlived gpu-check"
            kill "$pid"
        fi
    done
    checks=$((checks + 1))
    [ $((SECONDS - t0)) -le 16 ] || fail "gpu-check with pprun hanging on *$hang took $((SECONDS - t0)) s, over its 8 s and the grace"
    expect 0 '^- smoke: .*FAILED' -- cat $name.out/results.md
    expect 0 '^- \(a\) GPU tests: FAILED \(exit 124, time limit reached' -- cat $name.out/results.md
    check_out $name.out
    check_printed $name
done

# F: the build from source is bounded too: a checkout without a bundle whose meson never
# returns, under a total of 6 s
mkdir -p srcroot/tools fakebin
cp "$src/tools/gpu-check" srcroot/tools/
for p in nvcc ninja flex bison pkg-config; do printf '#!/bin/sh\nexit 0\n' >fakebin/$p; done
printf '#!/bin/sh\nexec sleep 600\n' >fakebin/meson
chmod +x fakebin/*
t0=$SECONDS
rm -rf src.out
OUT="$PWD/src.out" GPU_CHECK_SECONDS=6 PATH="$PWD/fakebin:$PWD/gpu:$PATH" srcroot/tools/gpu-check >src.txt 2>&1
expect_exit 1 src $?
checks=$((checks + 1))
[ $((SECONDS - t0)) -le 14 ] || fail "gpu-check building from source took $((SECONDS - t0)) s, over its 6 s and the grace"
expect 0 '^- gpu-check stopped: meson setup did not finish within the build.s time' -- cat src.out/results.md
check_out src.out
expect 2 'GPU_CHECK_SECONDS must be 1..9999 seconds' -- env GPU_CHECK_SECONDS=soon "$src/tools/gpu-check" --prebuilt "$PWD/bundle"

# C, D: the bundle's pprun needs a library that is not on the library path
cc=${CC:-cc}
mkdir -p lib fakepy/site/nvidia/fake/lib fakepy/bin
echo 'int pp_missing(void) { return 0; }' >lib/missing.c
cat >lib/main.c <<'EOF'
#include <stdio.h>
#include <string.h>
int pp_missing(void);
int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("pprun 0.1.0 (backends: cpu, cuda)\n");
        return pp_missing();
    }
    fputs("fake pprun\n", stderr);
    return 1;
}
EOF
if $cc -shared -fPIC -o lib/libppmissing.so lib/missing.c && $cc -o lib/pprun lib/main.c -Llib -lppmissing; then
    cp -r bundle fakebundle
    cp lib/pprun fakebundle/runtime/pprun
    printf '#!/bin/sh\necho %s\n' "$PWD/fakepy/site" >fakepy/bin/python3
    chmod +x fakepy/bin/python3
    gpu_check nowhere "$PWD/gpu:$PWD/fakepy/bin" "$PWD/fakebundle"
    expect_exit 1 nowhere $?
    expect 0 'libraries not found \(here, in the CUDA folders or the Python.s nvidia-\* wheels\): libppmissing.so' -- cat nowhere.out/results.md
    check_out nowhere.out
    mv lib/libppmissing.so fakepy/site/nvidia/fake/lib/
    gpu_check inwheel "$PWD/gpu:$PWD/fakepy/bin" "$PWD/fakebundle"
    expect 0 "libppmissing.so: not on the library path; found in $PWD/fakepy/site/nvidia/fake/lib \\(the Python's nvidia-\\* wheels\\)" -- cat inwheel.txt
    expect 0 '^- libraries: ' -- cat inwheel.out/results.md
else
    echo "note: no C compiler ($cc): the missing-library cases are not run"
fi
finish test_gpu_check
