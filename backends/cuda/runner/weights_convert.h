// File bytes -> a param buffer's device bytes, one table entry per (file type, device type)
// pair the runner can load, as runtime/runner/buffers.ts does in TypeScript: f32 copied;
// f16 / bf16 widened to f32 (exactly) when the Program keeps the param f32; q8_0 / q4_0
// dequantised to f32 as ggml does (runtime/weights/ggufQuant.ts: d * q, exact in f32), and
// q4_K / q5_K / q6_K too, with the TypeScript decoders' roundings (field offsets: model.h); f16
// kept as f16; bf16 narrowed to f16 (refused beyond f16's range, as buffers.ts bf16ToF16);
// and any block type the Program keeps compact repacked into the device layout of
// program/quant.ts (bodies, then the f16 halves), from the layout constants model.h holds.
// Adding a type is one entry in CONVERSIONS (and its FileType / DeviceType rows, generated).
#pragma once
#include "weights_file.h"

/** One chunk's device bytes: `main` (values, or block bodies) and `halves` (block types' f16 halves). */
struct Staged { std::vector<uint8_t> main, halves; };

/** Converts `elements` values (whole blocks of both types) from `src`. */
using ConvertFn = void (*)(const uint8_t* src, uint64_t elements, const model::DeviceType& to, Staged& out);

namespace convert_detail {

inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float v;
  if (e == 0) v = std::ldexp(float(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(float(m | 0x400), int(e) - 25);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits |= sign;
  std::memcpy(&v, &bits, 4);
  return v;
}

inline float bf16_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

/** f32 -> f16 bits, rounding to nearest even (as runtime/weights/ggufQuant.ts toHalf). */
inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return uint16_t(sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0));
  if (abs >= 0x477ff000) return uint16_t(sign | 0x7c00);  // rounds to beyond 65504
  if (abs < 0x38800000) {  // below f16's normal range: a subnormal (or zero), rounded to nearest even
    const float v = std::fabs(f) * 16777216.0f;  // in units of 2^-24, exact
    return uint16_t(sign | uint16_t(std::nearbyint(v)));
  }
  const uint32_t mant = abs & 0x7fffff, e = (abs >> 23) - 127 + 15;
  uint32_t h = (e << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return uint16_t(sign | h);
}

template <class F> void widen(const uint8_t* src, uint64_t n, Staged& out, F conv) {
  out.main.resize(n * 4);
  for (uint64_t i = 0; i < n; i++) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    const float v = conv(h);
    std::memcpy(out.main.data() + 4 * i, &v, 4);
  }
}

inline void copy(const uint8_t* src, uint64_t n, const model::DeviceType& to, Staged& out) { out.main.assign(src, src + n * to.block_bytes); }
inline void f16_to_f32(const uint8_t* src, uint64_t n, const model::DeviceType&, Staged& out) { widen(src, n, out, half_to_float); }
inline void bf16_to_f32(const uint8_t* src, uint64_t n, const model::DeviceType&, Staged& out) { widen(src, n, out, bf16_to_float); }

inline void bf16_to_f16(const uint8_t* src, uint64_t n, const model::DeviceType&, Staged& out) {
  out.main.resize(n * 2);
  for (uint64_t i = 0; i < n; i++) {
    uint16_t b;
    std::memcpy(&b, src + 2 * i, 2);
    const float v = bf16_to_float(b);
    const uint16_t h = float_to_half(v);
    if ((h & 0x7c00) == 0x7c00 && std::isfinite(v)) throw std::runtime_error("value " + std::to_string(v) + " (element " + std::to_string(i) + " of this read) is beyond f16's range, so this bf16 tensor cannot be kept as f16 on the device (compile without the file's weight types to keep it f32)");
    std::memcpy(out.main.data() + 2 * i, &h, 2);
  }
}

/** q8_0 (d, int8 q[32]) -> d * q. */
inline void q8_0_to_f32(const uint8_t* src, uint64_t n, const model::DeviceType&, Staged& out) {
  out.main.resize(n * 4);
  float* o = reinterpret_cast<float*>(out.main.data());
  for (uint64_t b = 0; b < n / 32; b++) {
    const uint8_t* blk = src + b * 34;
    const float d = half_to_float(uint16_t(blk[0] | (blk[1] << 8)));
    for (int j = 0; j < 32; j++) o[b * 32 + j] = d * float(int8_t(blk[2 + j]));
  }
}

/** q4_0 (d, nibbles[16]: byte j holds element j low, j + 16 high) -> d * (q - 8). */
inline void q4_0_to_f32(const uint8_t* src, uint64_t n, const model::DeviceType&, Staged& out) {
  out.main.resize(n * 4);
  float* o = reinterpret_cast<float*>(out.main.data());
  for (uint64_t b = 0; b < n / 32; b++) {
    const uint8_t* blk = src + b * 18;
    const float d = half_to_float(uint16_t(blk[0] | (blk[1] << 8)));
    for (int j = 0; j < 16; j++) {
      o[b * 32 + j] = d * float(int(blk[2 + j] & 15) - 8);
      o[b * 32 + j + 16] = d * float(int(blk[2 + j] >> 4) - 8);
    }
  }
}

/** q4_K / q5_K (d, dmin, 12 scale bytes, [q5_K: qh[32]], qs[128]) -> d * scale * q - dmin * min, as ggufQuant.ts decodeQ45K. */
template <bool FIVE> void q45_K_to_f32(const uint8_t* src, uint64_t n, const model::DeviceType&, Staged& out) {
  out.main.resize(n * 4);
  float* o = reinterpret_cast<float*>(out.main.data());
  const unsigned bytes = FIVE ? 176 : 144;
  for (uint64_t b = 0; b < n / 256; b++) {
    const uint8_t* blk = src + b * bytes;
    const float d = half_to_float(uint16_t(blk[0] | (blk[1] << 8))), dmin = half_to_float(uint16_t(blk[2] | (blk[3] << 8)));
    const uint8_t *body = blk + 4, *sc = body + model::K4_SCALES, *qs = body + (FIVE ? model::K5_QS : model::K4_QS), *qh = body + model::K5_QH;
    for (int c = 0; c < 4; c++) {
      for (int half = 0; half < 2; half++) {
        const int s = 2 * c + half;
        const unsigned scale = s < 4 ? sc[s] & 63 : (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4);
        const unsigned min = s < 4 ? sc[s + 4] & 63 : (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
        const float ds = d * float(scale), ms = dmin * float(min);
        for (int j = 0; j < 32; j++) {
          const unsigned nib = half ? qs[32 * c + j] >> 4 : qs[32 * c + j] & 15;
          const unsigned q = FIVE && ((qh[j] >> s) & 1) ? nib + 16 : nib;
          // One rounding, as the TypeScript decoder's fround(ds * q - ms) in double.
          o[b * 256 + 64 * c + 32 * half + j] = float(double(ds) * q - double(ms));
        }
      }
    }
  }
}

/** q6_K (ql[128], qh[64], int8 scales[16], d) -> (d * scale) * (q - 32), as ggufQuant.ts decodeQ6K. */
inline void q6_K_to_f32(const uint8_t* src, uint64_t n, const model::DeviceType&, Staged& out) {
  out.main.resize(n * 4);
  float* o = reinterpret_cast<float*>(out.main.data());
  for (uint64_t b = 0; b < n / 256; b++) {
    const uint8_t* blk = src + b * 210;
    const float d = half_to_float(uint16_t(blk[model::K6_D] | (blk[model::K6_D + 1] << 8)));
    for (int h = 0; h < 2; h++) {
      for (int r = 0; r < 4; r++) {
        for (int j = 0; j < 32; j++) {
          const uint8_t lo = blk[model::K6_QL + 64 * h + 32 * (r % 2) + j];
          const int nib = r < 2 ? lo & 15 : lo >> 4;
          const int hi = (blk[model::K6_QH + 32 * h + j] >> (2 * r)) & 3;
          const float ds = d * float(int8_t(blk[model::K6_SCALES + 8 * h + 2 * r + (j >> 4)]));
          o[b * 256 + 128 * h + 32 * r + j] = ds * float((nib | (hi << 4)) - 32);
        }
      }
    }
  }
}

/** A block type into its own device layout: each block's halves to `halves`, the rest of its bytes to `main`. */
inline void repack_blocks(const uint8_t* src, uint64_t n, const model::DeviceType& to, Staged& out) {
  const uint64_t blocks = n / to.block_elements, body = uint64_t(to.body_words) * 4, hb = 2ull * to.halves;
  out.main.resize(blocks * body);
  out.halves.resize(blocks * hb);
  for (uint64_t b = 0; b < blocks; b++) {
    const uint8_t* blk = src + b * to.block_bytes;
    std::memcpy(out.halves.data() + b * hb, blk + to.halves_at, hb);
    std::memcpy(out.main.data() + b * body, blk, to.halves_at);
    std::memcpy(out.main.data() + b * body + to.halves_at, blk + to.halves_at + hb, to.block_bytes - to.halves_at - hb);
  }
}

}  // namespace convert_detail

/** The loadable (file type, device type) pairs; block types to themselves are REPACK. */
struct Conversion { const char* from; const char* to; ConvertFn fn; };
inline const Conversion CONVERSIONS[] = {
  {"f32", "f32", convert_detail::copy},
  {"f16", "f32", convert_detail::f16_to_f32},
  {"bf16", "f32", convert_detail::bf16_to_f32},
  {"q8_0", "f32", convert_detail::q8_0_to_f32},
  {"q4_0", "f32", convert_detail::q4_0_to_f32},
  {"q4_K", "f32", convert_detail::q45_K_to_f32<false>},
  {"q5_K", "f32", convert_detail::q45_K_to_f32<true>},
  {"q6_K", "f32", convert_detail::q6_K_to_f32},
  {"f16", "f16", convert_detail::copy},
  {"bf16", "f16", convert_detail::bf16_to_f16},
};

/** How a tensor of `from` fills a param of device type `to`, or nullptr. */
inline ConvertFn find_conversion(const std::string& from, const model::DeviceType& to) {
  for (const Conversion& c : CONVERSIONS) if (from == c.from && std::strcmp(to.name, c.to) == 0) return c.fn;
  if (to.blocks && from == to.name) return convert_detail::repack_blocks;
  return nullptr;
}

/** The file types that fill a param of device type `to`, for messages. */
inline std::string loadable_into(const model::DeviceType& to) {
  std::string out;
  for (const Conversion& c : CONVERSIONS) if (std::strcmp(to.name, c.to) == 0) out += (out.empty() ? "" : ", ") + std::string(c.from);
  if (to.blocks) out += (out.empty() ? "" : ", ") + std::string(to.name);
  return out;
}
