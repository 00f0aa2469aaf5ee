// The one switch between the two builds of a generated runner: with INFER_EMU (build.sh
// --emu, g++) the CUDA runtime and launches come from the CPU emulation; without it
// (build.sh --cuda, nvcc) from CUDA itself. Every runtime call goes through CUDA_CHECK and
// every launch is followed by a check of the launch error, so a failure names its call.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <math.h>
#ifdef INFER_EMU
#include "cuda_emu_runtime.h"
#define INFER_LAUNCH(fn, name, grid, block, ...) emu_launch(grid, block, [&] { fn(__VA_ARGS__); }, name)
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define INFER_LAUNCH(fn, name, grid, block, ...) fn<<<grid, block>>>(__VA_ARGS__)
#endif

inline void infer_check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "runner: %s failed at %s:%d: %s\n", call, file, line, cudaGetErrorString(e));
  std::exit(1);
}
#define CUDA_CHECK(call) infer_check((call), #call, __FILE__, __LINE__)
