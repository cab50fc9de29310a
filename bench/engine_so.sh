#!/usr/bin/env bash
# engine_so.sh - build a tree's engine as a shared library, for bench/ab_inproc.c.
#
#   bench/engine_so.sh TREE OUT.so
#
# TREE is a checkout of this repository at any commit (`git worktree add`, or `git archive
# COMMIT | tar -x -C DIR`). Its engine sources are compiled with the flags its own Makefile
# gives them, plus -fPIC, and linked into OUT.so. Two layouts are known: the current one
# (engine/ and engine/kernels/: baseline x86-64, the kernel files for x86-64-v3 with fused
# multiply-adds, kernels.c once per instruction set) and the one before the tree was split
# by layer (engine/*.c only, everything for x86-64-v3 with fused multiply-adds).
set -euo pipefail
tree=${1:?usage: engine_so.sh TREE OUT.so}
out=${2:?usage: engine_so.sh TREE OUT.so}
cflags="-O3 -g -std=c11 -D_GNU_SOURCE -fPIC -pthread -w -Wno-psabi $(pkg-config --cflags libcjson openblas)"
objs=$(mktemp -d)
trap 'rm -rf "$objs"' EXIT
pids=()
cc_bg() {
    cc $cflags "$@" &
    pids+=($!)
}
if [ -d "$tree/engine/kernels" ]; then
    base="-march=x86-64 -ffp-contract=off -I$tree"
    kern="$base -march=x86-64-v3 -ffp-contract=fast"
    for f in "$tree"/engine/*.c "$tree"/engine/kernels/{blas,kernel_table,winograd}.c; do
        cc_bg $base -c "$f" -o "$objs/$(basename "$f" .c).o"
    done
    for f in "$tree"/engine/kernels/{gemm_packed,winograd_simd}.c; do
        cc_bg $kern -c "$f" -o "$objs/$(basename "$f" .c).o"
    done
    cc_bg $kern -DKERNELS_ISA=avx2 -c "$tree/engine/kernels/kernels.c" -o "$objs/kernels_avx2.o"
    cc_bg $base -DKERNELS_ISA=base -c "$tree/engine/kernels/kernels.c" -o "$objs/kernels_base.o"
else
    for f in "$tree"/engine/*.c; do
        cc_bg -march=x86-64-v3 -ffp-contract=fast -I"$tree/engine" -I"$tree/server" -c "$f" \
            -o "$objs/$(basename "$f" .c).o"
    done
fi
for p in "${pids[@]}"; do wait "$p"; done
mkdir -p "$(dirname "$out")"
cc -shared -o "$out" "$objs"/*.o $(pkg-config --libs libcjson openblas) -lm -pthread
