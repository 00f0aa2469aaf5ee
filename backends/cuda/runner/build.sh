#!/bin/sh
# Builds this model's host runner (written by `infer compile --target cuda`).
#   ./build.sh --emu    g++ against the CPU emulation (emu/)     -> runner-emu
#   ./build.sh --asan   the same with AddressSanitizer           -> runner-emu-asan
#   ./build.sh --cuda   nvcc for a GPU (CUDA_ARCH, default sm_80) -> runner
# CXX, NVCC, CUDA_ARCH and NVCC_FLAGS (e.g. "-Xptxas -v") override the defaults.
set -eu
cd "$(dirname "$0")"
# Host arithmetic must not be contracted into FMAs: the seeded weights are generated bit for bit.
case "${1:-}" in
  --emu|--asan)
    if [ "$1" = --emu ]; then out=runner-emu; flags="-O2"; else out=runner-emu-asan; flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address"; fi
    # The kernels' __shared__ statics share one linker section (emu/cuda_emu.h poisons it per
    # block); -fno-weak keeps those inside inline functions out of COMDAT groups, which GCC
    # refuses to mix with plain statics in one named section. Its price: every inline variable
    # gets a copy per object file (GCC says so for each, hence -w on this one compile; the
    # kernels' warnings are nvcc's to report), which is harmless because only kernels.o
    # launches and runs kernels, so the emulation's state lives in that copy alone.
    ${CXX:-g++} -std=c++17 $flags -ffp-contract=off -fno-weak -w -DINFER_EMU -Ihost -Iemu -c -x c++ host/kernels.cu -o "$out-kernels.o"
    ${CXX:-g++} -std=c++17 $flags -ffp-contract=off -DINFER_EMU -Ihost -Iemu -c host/runner.cpp -o "$out-host.o"
    ${CXX:-g++} $flags -o "$out" "$out-kernels.o" "$out-host.o"
    rm -f "$out-kernels.o" "$out-host.o"
    echo "built $(pwd)/$out" ;;
  --cuda)
    ${NVCC:-nvcc} -std=c++17 -O3 -lineinfo -arch="${CUDA_ARCH:-sm_80}" -Xcompiler -ffp-contract=off ${NVCC_FLAGS:-} -Ihost -o runner host/kernels.cu host/runner.cpp
    echo "built $(pwd)/runner" ;;
  *)
    echo "usage: $0 --emu | --asan | --cuda" >&2
    exit 2 ;;
esac
