// Runs CUDA kernels on the CPU for tests: the machine that runs CI has nvcc but no GPU, so a
// kernel's numbers are checked by compiling its source with g++ against this header. Each
// block runs as blockDim OS threads (blocks one after another), __syncthreads is a barrier
// over them, __shared__ variables are function statics (one block lives at a time, so they
// are that block's), and a warp shuffle goes through a barrier-guarded exchange array, which
// is exact when every thread of the block reaches the shuffle, as infer's kernels do.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct float4 { float x, y, z, w; };
inline thread_local uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

inline std::barrier<>* emu_barrier = nullptr;
inline void __syncthreads() { emu_barrier->arrive_and_wait(); }

inline float emu_exchange[1024];
inline float __shfl_down_sync(unsigned, float v, unsigned delta) {
  const unsigned i = threadIdx.x;
  emu_exchange[i] = v;
  __syncthreads();
  const float r = (i % 32) + delta < 32 ? emu_exchange[i + delta] : v;
  __syncthreads();
  return r;
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

struct __half { uint16_t bits; };
inline float __half2float(__half h) {
  const uint32_t sign = (h.bits & 0x8000u) << 16, exp = (h.bits >> 10) & 0x1f, man = h.bits & 0x3ffu;
  uint32_t f;
  if (exp == 0 && man == 0) f = sign;
  else if (exp == 0) { // subnormal: normalise
    int e = -1; uint32_t m = man;
    do { e++; m <<= 1; } while ((m & 0x400u) == 0);
    f = sign | ((uint32_t)(127 - 15 - e) << 23) | ((m & 0x3ffu) << 13);
  } else if (exp == 31) f = sign | 0x7f800000u | (man << 13);
  else f = sign | ((exp + 127 - 15) << 23) | (man << 13);
  float out;
  std::memcpy(&out, &f, 4);
  return out;
}

/** Launches `kernel` (a callable running one thread's work) over grid x block. */
template <class F> void emu_launch(dim3 grid, dim3 block, F kernel) {
  gridDim = grid;
  blockDim = block;
  const unsigned n = block.x * block.y * block.z;
  std::barrier<> bar((std::ptrdiff_t)n);
  emu_barrier = &bar;
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        std::vector<std::thread> threads;
        for (unsigned i = 0; i < n; i++) {
          threads.emplace_back([&, i] {
            blockIdx = {bx, by, bz};
            threadIdx = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
            kernel();
          });
        }
        for (auto& t : threads) t.join();
      }
}
