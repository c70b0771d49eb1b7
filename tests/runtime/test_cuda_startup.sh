#!/usr/bin/env bash
# test_cuda_startup.sh PPCC PPRUN WRITE_PLAN SHIM — CUDA start-up errors
# (builds with CUDA): cudaGetDeviceCount's answer is set by a preloaded
# shim (cuda_count_shim.c).  "No device" is the only error read as "no
# GPU"; any other is printed — the default backend says so and runs on the
# CPU, --backend cuda fails with it — and test_gpu.sh fails instead of
# skipping when the driver lists a GPU (a fake nvidia-smi) that CUDA cannot
# use.  NCCL is no link dependency: its absence fails the multi-process run
# that needs it, with the way out.
set -u
ppcc=$1 pprun=$2 write_plan=$3 shim=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

"$write_plan" 1f1b-2x4 plan.json || exit 1
with() { local err=$1; shift; env LD_PRELOAD="$shim" PPRUN_SHIM_CUDA_ERROR=$err "$@"; }
# the shim's default error is 0 (success): give "no device" its code explicitly

expect 1 '^pprun: error: --backend cuda: no GPU is visible$' -- with 100 "$pprun" plan.json --backend cuda
expect 0 '^pprun: no GPU visible, running on the CPU$' -- with 100 "$pprun" plan.json
expect 1 '^pprun: error: --backend cuda: CUDA cannot start: cudaErrorInsufficientDriver: ' -- \
    with 35 "$pprun" plan.json --backend cuda
expect 0 '^pprun: CUDA cannot start \(cudaErrorInsufficientDriver: .*\), running on the CPU$' -- \
    with 35 "$pprun" plan.json
expect 1 'CUDA cannot start: cudaErrorUnknown' -- with 999 "$pprun" plan.json --backend cuda
# every other path that needs a GPU names the CUDA error too, not "no GPU": --precision,
# --gpus, a rank of a multi-process run, and --nproc's launcher (which asks CUDA only when
# the driver lists too few GPUs for it)
expect 1 '^pprun: error: --precision bf16 needs a GPU, and CUDA cannot start: cudaErrorInsufficientDriver: ' -- \
    with 35 "$pprun" plan.json --precision bf16
expect 1 '^pprun: error: --gpus 2 needs a GPU, and CUDA cannot start: cudaErrorInsufficientDriver: ' -- \
    with 35 "$pprun" plan.json --gpus 2
expect 1 '^pprun: error: --precision bf16 needs a GPU and none is visible' -- with 100 "$pprun" plan.json --precision bf16
expect 1 '^pprun: error: rank 0 of 2: a multi-process run under torchrun or srun needs the cuda backend, and CUDA cannot start: cudaErrorInsufficientDriver: ' -- \
    with 35 env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$pprun" plan.json
listed=$(ls /proc/driver/nvidia/gpus 2>/dev/null | wc -l)
if [ "$listed" -lt 2 ]; then
    expect 1 '^pprun: error: --nproc 2: CUDA cannot start: cudaErrorInsufficientDriver: ' -- \
        with 35 "$pprun" plan.json --nproc 2 --backend cuda
    expect 1 "^pprun: error: --nproc 2: $listed GPUs? (is|are) visible, one per process is needed\$" -- \
        with 100 "$pprun" plan.json --nproc 2 --backend cuda
fi
if [ "$listed" = 0 ]; then # no GPU at all: without --backend the ranks run on the CPU, saying why
    expect 0 '^pprun: CUDA cannot start \(cudaErrorInsufficientDriver: .*\), running 2 processes on the CPU$' -- \
        with 35 "$pprun" plan.json --nproc 2
    expect 0 '^pprun: no GPU visible, running 2 processes on the CPU$' -- with 100 "$pprun" plan.json --nproc 2
fi

# NCCL is loaded only when a multi-process run needs it: not a link dependency, and its
# absence is an error naming what to do, at the first rank that needs it
if command -v readelf >/dev/null 2>&1; then
    checks=$((checks + 1))
    readelf -d "$pprun" | grep -q 'NEEDED.*libnccl' && fail "pprun links libnccl (readelf -d)"
fi
expect 1 '^pprun: error: rank 0: NCCL cannot be loaded \(/nonexistent/libnccl.so.2: .*PPRUN_NCCL_LIBRARY' -- \
    with 0 env PPRUN_SHIM_CUDA_COUNT=1 PPRUN_NCCL_LIBRARY=/nonexistent/libnccl.so.2 RANK=0 \
    WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$pprun" plan.json --timeout 2

# test_gpu.sh: a GPU the driver lists but CUDA cannot use fails; none listed skips
mkdir -p gpu/bin nogpu/bin
printf '#!/bin/sh\necho "GPU 0: NVIDIA H200 (UUID: GPU-0)"\n' >gpu/bin/nvidia-smi
printf '#!/bin/sh\nexit 9\n' >nogpu/bin/nvidia-smi
chmod +x gpu/bin/nvidia-smi nogpu/bin/nvidia-smi
export PP_SOURCE_ROOT
gpu_test() { with 35 env PATH="$PWD/$1/bin:$PATH" bash "$here/test_gpu.sh" "$ppcc" "$pprun" "$write_plan"; }
expect 1 'FAIL: pprun cannot run on the GPU \(1 listed by the driver\)' -- gpu_test gpu
if [ ! -d /proc/driver/nvidia/gpus ]; then
    expect 77 '^SKIP: no GPU here' -- gpu_test nogpu
fi
finish test_cuda_startup
