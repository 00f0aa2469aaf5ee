// Layout constants both C-like backends (WGSL, CUDA) feed their templates from: a KV
// format's packing (program/kv.ts defines the page; this gives the template flags) and
// RoPE's frequency tables. One function each, so the two backends cannot disagree.
import { hasScales, KV_BITS, KV_LEVELS, pageWords, rowWords, scaleOffsetWords } from '../../program/kv.ts';
import type { KvDType } from '../../program/model.ts';

/** Template flags and packing constants of a KV format. */
export function kvFormat(dtype: KvDType, headDim: number, kvHeads: number, pageSize: number) {
  if (!(dtype in KV_BITS)) throw new Error(`unknown KV dtype ${String(dtype)}`);
  const bits = KV_BITS[dtype];
  if ((dtype === 'f16' || dtype === 'int4') && headDim % 2) throw new Error(`KV dtype ${dtype} needs an even headDim, got ${headDim}`);
  return {
    dtype, f32: dtype === 'f32', f16: dtype === 'f16', int8: dtype === 'int8', int4: dtype === 'int4', scaled: hasScales(dtype), bits, perWord: 32 / bits,
    mask: bits === 32 ? 0xffffffff : (1 << bits) - 1, levels: KV_LEVELS[dtype] ?? 0, rowWords: rowWords({ headDim, dtype }),
    pageWords: pageWords({ kvHeads, headDim, pageSize, dtype }), scaleOff: scaleOffsetWords({ kvHeads, headDim, pageSize, dtype }),
  };
}

/**
 * RoPE frequencies theta^(-2i/headDim) in float64, each split as hi + lo with hi carrying
 * 11 significant bits (so pos * hi is exact in f32 for pos < 8192), and 2*pi split for the
 * Cody-Waite reduction (see rope.hbs).
 */
export function ropeTables(theta: number, headDim: number) {
  if (!(theta > 0) || !Number.isFinite(theta)) throw new Error(`rope theta must be positive, got ${theta}`);
  const freqHi: number[] = [], freqLo: number[] = [];
  for (let i = 0; i < headDim / 2; i++) {
    const f = Math.pow(theta, (-2 * i) / headDim);
    const scale = 2 ** (10 - Math.floor(Math.log2(f)));
    const hi = Math.round(f * scale) / scale;
    freqHi.push(hi);
    freqLo.push(Math.fround(f - hi));
  }
  const twoPiA = Math.round(2 * Math.PI * 1024) / 1024;
  return { freqHi, freqLo, twoPiA, twoPiB: Math.fround(2 * Math.PI - twoPiA), invTwoPi: Math.fround(1 / (2 * Math.PI)) };
}
