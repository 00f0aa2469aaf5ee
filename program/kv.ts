// How the KV cache is stored: a pool of fixed-size pages, each holding `pageSize`
// token slots of every KV head, in one of four value formats. These facts are shared
// by the interpreter (the oracle), the scheduler (buffer sizes), the kernels and the
// runtime's page accounting, so they live in one place.
//
// Quantisation scheme (int8, int4): symmetric, one f32 scale per (token, KV head) row:
// scale = max|x| / L with L = 127 (int8) or 7 (int4), q = round_half_even(x / scale),
// stored value q * scale. Per-token scales (rather than KIVI-style per-channel scales
// for K) let a token be appended without touching any earlier token, which is what a
// paged append into shared, possibly read-only pages needs; symmetric (no zero point)
// keeps the dequantisation in the attention inner loop to one multiply.
// f16 rounds to nearest even (IEEE binary16), as WGSL's pack2x16float does.
import type { KvDType } from './model.ts';

export interface KvStorage {
  readonly kvHeads: number;
  readonly headDim: number;
  readonly pageSize: number;
  readonly dtype: KvDType;
}

export const KV_BITS: Record<KvDType, number> = { f32: 32, f16: 16, int8: 8, int4: 4 };
/** Largest quantised magnitude: q in [-L, L]. */
export const KV_LEVELS: Partial<Record<KvDType, number>> = { int8: 127, int4: 7 };

export const hasScales = (dtype: KvDType): boolean => dtype === 'int8' || dtype === 'int4';
/** 32-bit words per (token, KV head) row; rows start on a word, so a row never shares a word. */
export const rowWords = (s: Pick<KvStorage, 'headDim' | 'dtype'>): number => Math.ceil((s.headDim * KV_BITS[s.dtype]) / 32);
/** Scales of one page of K (or of V) for one layer: [kvHeads][pageSize] (0 when unquantised). */
export const pageScales = (s: KvStorage): number => (hasScales(s.dtype) ? s.kvHeads * s.pageSize : 0);
/**
 * Words of one page of K (or of V) for one layer: the rows [kvHeads][pageSize][rowWords],
 * then (int8/int4) their f32 scales [kvHeads][pageSize]. Scales live in the page rather
 * than in buffers of their own so attention binds 7 storage buffers (WebGPU's default
 * per-stage limit is 8), and a page copy (copy-on-write) moves a page's scales with it.
 */
export const pageWords = (s: KvStorage): number => s.kvHeads * s.pageSize * rowWords(s) + pageScales(s);
/** Word where a page's scale section starts: after its rows. */
export const scaleOffsetWords = (s: KvStorage): number => s.kvHeads * s.pageSize * rowWords(s);

/**
 * The page address, defined once: the first word of KV head `head`'s row in slot `slot`
 * (0 .. pageSize-1) of page `page` of one layer's K (or V) pool. The kernels compute the
 * same through the kv_addr partial, whose constants come from this file.
 */
export const kvRowWord = (s: KvStorage, page: number, head: number, slot: number): number =>
  page * pageWords(s) + (head * s.pageSize + slot) * rowWords(s);
/** The word of that row's f32 scale (int8 / int4 only). */
export const kvScaleWord = (s: KvStorage, page: number, head: number, slot: number): number =>
  page * pageWords(s) + scaleOffsetWords(s) + head * s.pageSize + slot;

/** Bytes one page occupies across K and V of one layer, scales included. */
export const pageBytesPerLayer = (s: KvStorage): number => 2 * 4 * pageWords(s);

/**
 * Where each token of a step lives in the page pool (FlashInfer-style CSR block tables).
 * Token t belongs to sequence seqOf[t] of the batch; sequence b's logical page i is
 * physical page pages[indptr[b] + i]; its last page holds lastLen[b] tokens; token t's
 * K/V goes to slot slots[t] (= page * pageSize + offset).
 */
export interface KvTables {
  readonly slots: Int32Array;
  readonly seqOf: Int32Array;
  readonly indptr: Int32Array;
  readonly pages: Int32Array;
  readonly lastLen: Int32Array;
}

/**
 * The block tables as the kernels read them, in one i32 buffer (one binding):
 * [B, indptr[0..B], lastLen[0..B-1], pages...].
 */
export function packKvTable(t: KvTables): Int32Array {
  const B = t.lastLen.length;
  const out = new Int32Array(2 + 2 * B + t.pages.length);
  out[0] = B;
  out.set(t.indptr, 1);
  out.set(t.lastLen, B + 2);
  out.set(t.pages, 2 * B + 2);
  return out;
}

/** Elements of the packed table for a batch of `seqs` sequences of up to `pagesPerSeq` pages. */
export const kvTableElements = (seqs: number, pagesPerSeq: number): number => 2 + seqs * (2 + pagesPerSeq);
/** Bytes one token's K and V occupy in one layer (what attention reads per key). */
export const tokenBytesPerLayer = (s: Omit<KvStorage, 'pageSize'>): number =>
  2 * s.kvHeads * 4 * (rowWords(s) + (hasScales(s.dtype) ? 1 : 0));

export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Rounds to the nearest IEEE binary16 value (ties to even); overflow goes to +-Infinity. */
export function roundF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  // Spacing of binary16 values around a: 2^(e-10) for normals, 2^-24 for subnormals.
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const ulp = 2 ** (e - 10);
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

/**
 * The value a row of K or V holds after being stored in `dtype`: the reference the
 * kernels are tested against. Returns the stored values and the row's scale (1 when
 * the format has none).
 */
export function storeRow(x: ArrayLike<number>, dtype: KvDType): { values: Float64Array; scale: number } {
  const out = new Float64Array(x.length);
  if (dtype === 'f32') { for (let i = 0; i < x.length; i++) out[i] = Math.fround(x[i]); return { values: out, scale: 1 }; }
  if (dtype === 'f16') { for (let i = 0; i < x.length; i++) out[i] = roundF16(x[i]); return { values: out, scale: 1 }; }
  const L = KV_LEVELS[dtype]!;
  let amax = 0;
  for (let i = 0; i < x.length; i++) amax = Math.max(amax, Math.abs(x[i]));
  const scale = Math.fround(amax / L);
  if (scale === 0) return { values: out, scale: 0 };
  for (let i = 0; i < x.length; i++) out[i] = Math.max(-L, Math.min(L, roundHalfEven(x[i] / scale))) * scale;
  return { values: out, scale };
}

/** The largest error `storeRow` can make on one element of a row whose largest magnitude is amax. */
export function storeErrorBound(amax: number, dtype: KvDType): number {
  if (dtype === 'f32') return amax * 2 ** -24;
  if (dtype === 'f16') return amax * 2 ** -11;
  return amax / (2 * KV_LEVELS[dtype]!) * (1 + 1e-6);
}
