// Layout constants both C-like backends (WGSL, CUDA) feed their templates from: a KV
// format's packing (program/kv.ts defines the page; this gives the template flags), a
// compact weight's device layout (program/quant.ts) and RoPE's frequency tables. One
// function each, so the two backends cannot disagree.
import { hasScales, KV_BITS, KV_LEVELS, pageWords, rowWords, scaleOffsetWords } from '../../program/kv.ts';
import type { KvDType } from '../../program/model.ts';
import { BLOCK_LAYOUT, blockElements, isCompactType, K_SECTIONS, QUANT_WORDS_PER_BLOCK, quantWords, type CompactType } from '../../program/quant.ts';

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

/** Template flags of no compact weight (f32 weights). */
export const NO_COMPACT_WEIGHT = { quant: false, wq8: false, wq4: false, wf16: false, wk: false, wk45: false, wq5k: false, wq6k: false, halfPerBlock: false } as const;

/**
 * Template flags and layout constants of a [K, N] compact weight in `binding` (program/quant.ts
 * defines the layout): the type's flag, the block length and body words, where the halves
 * section starts (soff, in words) and the K-quant fields' byte offsets inside a body (ksc
 * scales, kqs nibbles, kqh high bits, kql q6_K's low nibbles). Blocks run along K, so K must
 * be a multiple of the type's unit (blockElements).
 */
export function compactWeightFormat(wtype: CompactType, binding: string, K: number, N: number) {
  if (!isCompactType(wtype)) throw new Error(`unknown weight type ${String(wtype)}`);
  if (K % blockElements(wtype) !== 0) throw new Error(`${wtype} weights need K (dim 0) to be a multiple of ${blockElements(wtype)}, got ${K}`);
  const common = { ...NO_COMPACT_WEIGHT, quant: true, qbinding: binding, wtypeText: wtype };
  if (wtype === 'f16') return { ...common, wf16: true };
  const sections: Partial<Record<'scales' | 'qs' | 'qh' | 'ql', number>> = wtype === 'q4_K' || wtype === 'q5_K' || wtype === 'q6_K' ? K_SECTIONS[wtype] : {};
  return {
    ...common, wq8: wtype === 'q8_0', wq4: wtype === 'q4_0', wk: wtype.endsWith('_K'), wk45: wtype === 'q4_K' || wtype === 'q5_K',
    wq5k: wtype === 'q5_K', wq6k: wtype === 'q6_K', halfPerBlock: BLOCK_LAYOUT[wtype].halves === 1,
    soff: quantWords(wtype, K * N), qblock: BLOCK_LAYOUT[wtype].elements, qwords: QUANT_WORDS_PER_BLOCK[wtype],
    ksc: sections.scales, kqs: sections.qs, kqh: sections.qh, kql: sections.ql,
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
