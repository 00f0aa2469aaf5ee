// Runs CUDA kernels on the CPU, for tests and for `build.sh --emu` runners: a machine with
// nvcc but no GPU checks a kernel's numbers by compiling its source with g++ against this
// header. A block's threads run as fibers on one OS thread (cuda_emu_fiber.h: a hand-rolled
// context switch, no syscall), so __syncthreads and warp operations are context switches:
// a block of 256 threads costs what its arithmetic costs plus ~10 ns per switch, where the
// former thread-per-CUDA-thread emulation paid ~25 ms per block in thread creation.
//
// What the emulation checks, beyond computing the kernel's values:
//  - a __syncthreads that not every live thread of the block reaches (some exited, some at
//    another barrier, some waiting in a warp operation) is reported, never a hang;
//  - warp operations (shuffles, ballot, any/all, __syncwarp) complete when every lane of
//    their mask arrives with the same mask; a lane that exited or waits elsewhere, or a
//    shuffle that reads a lane outside the mask, is reported;
//  - __shared__ memory is poisoned (all bytes 0xff: NaN floats, -1 ints) at every block's
//    start, as a GPU leaves it undefined, so a missing barrier reads garbage, not zeros;
//  - CUDA_EMU_BLOCK_ORDER=reverse runs blocks last to first (a kernel whose blocks depend on
//    each other's writes changes its answer), CUDA_EMU_THREAD_ORDER=reverse runs a block's
//    threads last to first between barriers (a missing barrier shows from the other side);
//  - compiled with -fsanitize=address, device buffers are exact-size heap blocks and
//    __shared__ arrays are instrumented globals, so an out-of-bounds access is reported
//    (ASan skips globals in named sections, so that build does not poison shared memory).
// A reported error prints "cuda-emu: error: ..." on stderr and exits with status 70.
//
// __shared__ variables are statics in one linker section (emu_shared), poisoned per block;
// one block runs at a time, so they are that block's. Dynamic (extern) shared memory is not
// supported: kernels size shared arrays at compile time.
#pragma once
#include <math.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include "cuda_emu_fiber.h"

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// The running thread's indices: one OS thread runs every fiber, and the scheduler sets these
// before resuming one.
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
constexpr int warpSize = 32;

#define __global__
#define __device__
#define __host__
#define __constant__ static
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#ifdef CUDA_EMU_ASAN
// ASan instruments plain statics only (not those in a named section): out-of-bounds shared
// accesses are caught, and shared memory is not poisoned in this build.
#define __shared__ static __attribute__((aligned(16)))
#else
#define __shared__ static __attribute__((section("emu_shared"), aligned(16)))
#endif
#define __syncthreads() emu::syncthreads(__LINE__)
#define __syncwarp(...) emu::syncwarp(__LINE__, ##__VA_ARGS__)

// ---- arithmetic intrinsics (the CPU's correctly rounded versions) ----
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float v) { int i; std::memcpy(&i, &v, 4); return i; }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline unsigned __float_as_uint(float v) { unsigned i; std::memcpy(&i, &v, 4); return i; }
inline int __float2int_rn(float x) { return int(rintf(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
template <class T> inline T __ldg(const T* p) { return *p; }

// ---- f16 (IEEE binary16, as the GPU converts) ----
struct __half { uint16_t bits; };
struct __half2 { __half x, y; };
inline __half __ushort_as_half(unsigned short b) { return __half{b}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
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
  return __uint_as_float(f);
}
/** Round to nearest even, overflow to infinity, NaN kept NaN. */
inline __half __float2half_rn(float x) {
  const uint32_t f = __float_as_uint(x), sign = (f >> 16) & 0x8000u;
  const uint32_t a = f & 0x7fffffffu;
  if (a >= 0x7f800000u) return __half{uint16_t(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u))};
  if (a >= 0x477ff000u) return __half{uint16_t(sign | 0x7c00u)}; // rounds past 65504
  if (a < 0x38800000u) { // subnormal or zero in f16: value / 2^-24, rounded half-even
    const float s = __uint_as_float(a) * 16777216.0f;
    return __half{uint16_t(sign | uint32_t(rintf(s)))};
  }
  const uint32_t mant = a & 0x7fffffu, exp = (a >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
  return __half{uint16_t(sign | h)};
}
inline __half __float2half(float x) { return __float2half_rn(x); }
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
inline __half2 __floats2half2_rn(float a, float b) { return {__float2half_rn(a), __float2half_rn(b)}; }

// ---- atomics: one OS thread runs every fiber and a fiber switches only at a barrier or a
// warp operation, so a read-modify-write is atomic by construction ----
template <class T> inline T atomicAdd(T* p, T v) { const T old = *p; *p = old + v; return old; }
template <class T> inline T atomicSub(T* p, T v) { const T old = *p; *p = old - v; return old; }
template <class T> inline T atomicMax(T* p, T v) { const T old = *p; *p = old > v ? old : v; return old; }
template <class T> inline T atomicMin(T* p, T v) { const T old = *p; *p = old < v ? old : v; return old; }
template <class T> inline T atomicExch(T* p, T v) { const T old = *p; *p = v; return old; }
template <class T> inline T atomicCAS(T* p, T cmp, T v) { const T old = *p; if (old == cmp) *p = v; return old; }
template <class T> inline T atomicOr(T* p, T v) { const T old = *p; *p = old | v; return old; }
template <class T> inline T atomicAnd(T* p, T v) { const T old = *p; *p = old & v; return old; }
inline void __threadfence() {}
inline void __threadfence_block() {}

#include "cuda_emu_sched.h"

// ---- warp operations ----
template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const unsigned lane = emu::lane(), base = lane & ~unsigned(width - 1);
  return emu::shuffle(mask, v, base + (unsigned(src) & unsigned(width - 1)));
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
  const unsigned lane = emu::lane(), src = lane ^ unsigned(laneMask);
  const bool inside = (src & ~unsigned(width - 1)) == (lane & ~unsigned(width - 1));
  return emu::shuffle(mask, v, inside ? src : lane);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const unsigned lane = emu::lane();
  return emu::shuffle(mask, v, (lane & unsigned(width - 1)) + delta < unsigned(width) ? lane + delta : lane);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const unsigned lane = emu::lane();
  return emu::shuffle(mask, v, (lane & unsigned(width - 1)) >= delta ? lane - delta : lane);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return emu::vote(mask, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return (emu::vote(mask, pred != 0) & mask) != 0; }
inline int __all_sync(unsigned mask, int pred) {
  const unsigned live = mask & emu::lanes_of_warp();
  return (emu::vote(mask, pred != 0) & live) == live;
}
inline unsigned __activemask() { return emu::lanes_of_warp(); }
