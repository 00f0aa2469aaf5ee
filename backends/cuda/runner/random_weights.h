// Seeded random weights, ported bit for bit from runtime/weights/random.ts: each tensor is
// its own xoshiro128** stream seeded (by splitmix32) from hash(name, seed), and element i is
// base + a * (u32 / 2^31 - 1) in double, rounded to f32. The generator computes the hash, a
// and base in TypeScript and writes them into model.h, so no parameter name reaches C++.
#pragma once
#include <cstdint>
#include <vector>

class Xoshiro128 {
 public:
  explicit Xoshiro128(uint32_t seed) : s_(seed) { a_ = split(); b_ = split(); c_ = split(); d_ = split(); }
  uint32_t next_u32() {
    const uint32_t r = rotl(b_ * 5u, 7) * 9u;
    const uint32_t t = b_ << 9;
    c_ ^= a_; d_ ^= b_; b_ ^= c_; a_ ^= d_;
    c_ ^= t;
    d_ = rotl(d_, 11);
    return r;
  }

 private:
  static uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }
  uint32_t split() {
    s_ += 0x9e3779b9u;
    uint32_t z = s_;
    z = (z ^ (z >> 16)) * 0x85ebca6bu;
    z = (z ^ (z >> 13)) * 0xc2b2ae35u;
    return z ^ (z >> 16);
  }
  uint32_t s_, a_, b_, c_, d_;
};

/** A tensor's values in order (volatile keeps the double expression from being fused or reassociated). */
class RandomStream {
 public:
  RandomStream(uint32_t hash, double a, double base) : rng_(hash), a_(a), base_(base) {}
  void fill(float* out, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
      volatile double u = double(rng_.next_u32()) / 2147483648.0 - 1.0;
      volatile double v = a_ * u;
      out[i] = float(base_ + v);
    }
  }
  /** Moves past n values (a part of a split param starts inside its tensor's stream). */
  void skip(uint64_t n) { for (uint64_t i = 0; i < n; i++) rng_.next_u32(); }

 private:
  Xoshiro128 rng_;
  double a_, base_;
};

/** Fills `out` with the tensor's n values. */
inline void random_tensor(uint32_t hash, double a, double base, float* out, uint64_t n) { RandomStream(hash, a, base).fill(out, n); }

/** FNV-1a over bytes, for --weights-hash (tests compare it with the TypeScript weights). */
inline uint32_t fnv1a(const void* data, uint64_t bytes, uint32_t h = 2166136261u) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (uint64_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}
