// Runs CUDA kernels on the CPU for tests: the machine that runs CI has nvcc but no GPU, so a
// kernel's numbers are checked by compiling its source with g++ against this header. Each
// block runs as blockDim OS threads (blocks one after another), __syncthreads is a barrier
// over them, __shared__ variables are function statics (one block lives at a time, so they
// are that block's), and a warp shuffle goes through a barrier-guarded exchange array, which
// is exact when every thread of the block reaches the shuffle, as infer's kernels do.
#pragma once
// What the CUDA backend's kernels use (backends/cuda/templates), which any emulation must provide:
// __syncthreads; __shfl_xor_sync and __shfl_down_sync on floats (full mask, reached by every
// thread of the block); __shared__ arrays at namespace scope and inside member functions (one
// block's, so blocks must not run concurrently over them); __constant__ tables at namespace
// scope; __launch_bounds__(threads, minBlocks); float2 / float4 / uint2 / uint3 / uint4 and
// make_float2 / make_float4 / make_uint2; __half, __half2float, __float2half_rn (round to
// nearest even), __half_as_ushort, __ushort_as_half; __float_as_uint, __uint_as_float;
// __sinf, __cosf, rintf, expf, tanhf, sqrtf, fminf, fmaxf, fabsf.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline thread_local uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__ static

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

inline float __shfl_xor_sync(unsigned, float v, unsigned mask) {
  const unsigned i = threadIdx.x;
  emu_exchange[i] = v;
  __syncthreads();
  const float r = emu_exchange[(i & ~31u) | ((i % 32) ^ mask)];
  __syncthreads();
  return r;
}

inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }

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

inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
/** float -> binary16, round to nearest even (overflow to infinity), as the device's __float2half_rn. */
inline __half __float2half_rn(float x) {
  uint32_t f; std::memcpy(&f, &x, 4);
  const uint32_t sign = (f >> 16) & 0x8000u;
  const uint32_t a = f & 0x7fffffffu;
  if (a >= 0x7f800000u) return __half{(uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u))};
  if (a >= 0x477ff000u) return __half{(uint16_t)(sign | 0x7c00u)}; // rounds to >= 65520: infinity
  if (a < 0x38800000u) { // below the smallest normal: a subnormal (or zero) in units of 2^-24
    const float q = std::nearbyint(std::fabs(x) * 16777216.0f); // exact scaling; nearbyint rounds half to even
    return __half{(uint16_t)(sign | (uint16_t)q)};
  }
  const uint32_t rest = a & 0x1fffu, half = 0x1000u;
  uint32_t h = ((a - 0x38000000u) >> 13);
  if (rest > half || (rest == half && (h & 1u))) h++;
  return __half{(uint16_t)(sign | h)};
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
