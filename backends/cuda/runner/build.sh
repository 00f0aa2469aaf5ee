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
  --emu)
    ${CXX:-g++} -std=c++17 -O2 -ffp-contract=off -DINFER_EMU -Ihost -Iemu -o runner-emu -x c++ host/kernels.cu host/runner.cpp
    echo "built $(pwd)/runner-emu" ;;
  --asan)
    ${CXX:-g++} -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address -ffp-contract=off -DINFER_EMU -Ihost -Iemu -o runner-emu-asan -x c++ host/kernels.cu host/runner.cpp
    echo "built $(pwd)/runner-emu-asan" ;;
  --cuda)
    ${NVCC:-nvcc} -std=c++17 -O3 -lineinfo -arch="${CUDA_ARCH:-sm_80}" -Xcompiler -ffp-contract=off ${NVCC_FLAGS:-} -Ihost -o runner host/kernels.cu host/runner.cpp
    echo "built $(pwd)/runner" ;;
  *)
    echo "usage: $0 --emu | --asan | --cuda" >&2
    exit 2 ;;
esac
