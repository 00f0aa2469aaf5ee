// Weight dtypes a Program can keep on the device: their byte counts and their one
// device layout, which the compiler (sizes, cost.ts), the runtime (packBlocks at
// upload), the CPU decoders (runtime/weights/ggufQuant.ts) and the kernels
// (backends/*/templates dequant partials, fed from the constants here) all read from
// this file.
//
// Block types (ggml's; every field little-endian, f16 scales "halves"):
//   q8_0  32 weights, 34 bytes:  d, int8 q[32]
//   q4_0  32 weights, 18 bytes:  d, u8 nibbles[16] (byte i: element i low, i+16 high)
//   q4_K 256 weights, 144 bytes: d, dmin, u8 scales[12], u8 qs[128]
//   q5_K 256 weights, 176 bytes: d, dmin, u8 scales[12], u8 qh[32], u8 qs[128]
//   q6_K 256 weights, 210 bytes: u8 ql[128], u8 qh[64], int8 scales[16], d
// (the K-quant fields' meaning: K_SECTIONS below and ggufQuant.ts's decoders).
//
// Device layout of a block-quantised [K, N] param (N rows of K weights, K a multiple of
// the block length), one array<u32> binding in two sections:
//   bodies: every block's bytes except its f16 halves, blocks in file order (row n's
//           blocks are n*K/B .. (n+1)*K/B-1), copied byte for byte (so ggml's element
//           and nibble order is kept): 8 / 4 / 35 / 43 / 52 words per block;
//   halves: the blocks' f16 halves, `halves` per block in file order, two per word
//           (u16 index b*halves + h), starting at word `quantWords(type, elements)`.
// A 3-D expert param [K, N, E] is the same thing for the flat [K, N * E] matrix: expert
// e's rows are rows e*N .. (e+1)*N-1 (GGUF's own order for merged experts).
// Why repack instead of uploading the blocks as they are: 34, 18 and 210 are not
// multiples of 4, so a u32 view of the raw file would put quants at 2-byte offsets and
// every read would need two words and shifts. Split sections keep every body word
// aligned and cost exactly the file's bytes (at most 2 bytes of padding per tensor).
//
// f16 [K, N] params: the file's halves as they are, two per word (element e in half
// e%2 of word e/2), padded to a multiple of 4 elements (8 bytes) so a kernel may read
// them as array<vec4<f16>> (shader-f16) or as u32 pairs (unpack2x16float).
export type QuantType = 'q8_0' | 'q4_0' | 'q4_K' | 'q5_K' | 'q6_K';
/** Types a kernel reads compactly, without an f32 copy. */
export type CompactType = 'f16' | QuantType;
export type WeightType = 'f32' | CompactType;

export const QUANT_TYPES: readonly QuantType[] = ['q8_0', 'q4_0', 'q4_K', 'q5_K', 'q6_K'];
export const COMPACT_TYPES: readonly CompactType[] = ['f16', ...QUANT_TYPES];

export interface BlockLayout {
  /** Weights per block. */
  readonly elements: number;
  /** Bytes per block in the file. */
  readonly bytes: number;
  /** f16 halves per block (moved to the halves section on the device). */
  readonly halves: number;
  /** Byte offset of the halves inside the file's block. */
  readonly halvesAt: number;
}

export const BLOCK_LAYOUT: Readonly<Record<QuantType, BlockLayout>> = {
  q8_0: { elements: 32, bytes: 34, halves: 1, halvesAt: 0 },
  q4_0: { elements: 32, bytes: 18, halves: 1, halvesAt: 0 },
  q4_K: { elements: 256, bytes: 144, halves: 2, halvesAt: 0 },
  q5_K: { elements: 256, bytes: 176, halves: 2, halvesAt: 0 },
  q6_K: { elements: 256, bytes: 210, halves: 1, halvesAt: 208 },
};

/**
 * Byte offsets of the K-quant fields inside a block's body (the block without its
 * halves), shared by the CPU decoders and the WGSL dequant partial.
 *   q4_K / q5_K: scales = 8 sub-blocks of 32, each a 6-bit scale and 6-bit min in 12
 *   bytes (sub-block j < 4: scale = s[j] & 63, min = s[j+4] & 63; j >= 4: scale =
 *   (s[j+4] & 15) | (s[j-4] >> 6) << 4, min = (s[j+4] >> 4) | (s[j] >> 6) << 4);
 *   64-weight chunk c uses qs[32c .. 32c+32): low nibbles are sub-block 2c, high ones
 *   2c+1; q5_K's fifth bit of element l of sub-block j is bit j of qh[l].
 *   value = d*scale*q - dmin*min.
 *   q6_K: 128-weight halves h; element 32r + l of half h (r < 4, l < 32) has the low
 *   nibble (r < 2) or high nibble (r >= 2) of ql[64h + 32(r%2) + l], bits 2r..2r+1 of
 *   qh[32h + l] as bits 4..5, minus 32; scale = int8 scales[8h + 2r + l/16];
 *   value = d*scale*q.
 */
export const K_SECTIONS = {
  q4_K: { scales: 0, qs: 12 },
  q5_K: { scales: 0, qh: 12, qs: 44 },
  q6_K: { ql: 0, qh: 128, scales: 192 },
} as const;

/** Weights per q8_0 / q4_0 block (the CUDA backend's block length). */
export const QBLOCK = 32;

/** Bytes of one block's body (the block without its f16 halves). */
export const bodyBytes = (t: QuantType): number => BLOCK_LAYOUT[t].bytes - 2 * BLOCK_LAYOUT[t].halves;

/** u32 words of body per block. */
export const QUANT_WORDS_PER_BLOCK: Readonly<Record<QuantType, number>> = Object.fromEntries(
  QUANT_TYPES.map((t) => [t, bodyBytes(t) / 4])) as Record<QuantType, number>;

/** Bytes of one GGUF block of each quant type. */
export const QUANT_BLOCK_BYTES: Readonly<Record<QuantType, number>> = Object.fromEntries(
  QUANT_TYPES.map((t) => [t, BLOCK_LAYOUT[t].bytes])) as Record<QuantType, number>;

export const isQuantType = (t: string | undefined): t is QuantType => t !== undefined && (QUANT_TYPES as readonly string[]).includes(t);
export const isCompactType = (t: string | undefined): t is CompactType => t === 'f16' || isQuantType(t);

/**
 * The device type of a weight stored as `fileType` (a ggml type name) when the kernels can
 * read it compactly: the type itself, or f16 for bf16 (converted at load: bf16's 8-bit
 * significand fits f16's 11 bits, so every bf16 value in f16's normal range, about
 * 6.1e-5 .. 65504 in magnitude, converts exactly; smaller ones round, and the loader
 * refuses a tensor with a value beyond f16's range). Undefined: widened to f32.
 */
export function deviceWeightType(fileType: string | undefined): CompactType | undefined {
  if (fileType === 'bf16') return 'f16';
  return isCompactType(fileType) ? fileType : undefined;
}

/**
 * Weights along K a kernel reads as one unit: a block, or 4 f16 values (one vec4). A
 * param stays compact only when its K (dim 0) is a multiple of this.
 */
export function blockElements(t: CompactType): number {
  return t === 'f16' ? 4 : BLOCK_LAYOUT[t].elements;
}

/** Words of the body section (the halves section starts here). */
export function quantWords(type: QuantType, elements: number): number {
  return (elements / BLOCK_LAYOUT[type].elements) * QUANT_WORDS_PER_BLOCK[type];
}

/** Words of the whole device buffer of a compact tensor. */
export function deviceWords(type: CompactType, elements: number): number {
  if (type === 'f16') return 2 * Math.ceil(elements / 4);
  const l = BLOCK_LAYOUT[type];
  return quantWords(type, elements) + Math.ceil((elements / l.elements) * l.halves / 2);
}

/** Bytes a kernel reads for `elements` weights of this type (the file's size). */
export function weightBytes(type: WeightType, elements: number): number {
  switch (type) {
    case 'f32': return 4 * elements;
    case 'f16': return 2 * elements;
    default: return (elements / BLOCK_LAYOUT[type].elements) * BLOCK_LAYOUT[type].bytes;
  }
}

// GGUF blocks -> the device layout above (bodies, then the f16 halves), and back. The
// body bytes are copied unchanged, so a kernel's dequantisation is the file's.
/**
 * Repacks `elements` weights of GGUF blocks (exactly the tensor's bytes), into `into` when
 * given (at least deviceWords long: a streamed upload reuses one buffer for every chunk).
 */
export function packBlocks(type: QuantType, raw: Uint8Array, elements: number, into?: Uint32Array): Uint32Array {
  const l = BLOCK_LAYOUT[type], blocks = elements / l.elements, body = bodyBytes(type);
  if (!Number.isInteger(blocks)) throw new Error(`${type}: ${elements} weights are not whole blocks of ${l.elements}`);
  if (raw.length !== blocks * l.bytes) throw new Error(`${type}: ${raw.length} bytes for ${blocks} blocks of ${l.bytes} bytes`);
  const words = deviceWords(type, elements);
  if (into && into.length < words) throw new Error(`${type}: ${into.length} words given for ${words}`);
  const out = into ? into.subarray(0, words) : new Uint32Array(words);
  const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  const halves = new Uint16Array(out.buffer, out.byteOffset + 4 * quantWords(type, elements), (out.length - quantWords(type, elements)) * 2);
  // A reused buffer's last word may hold an old half past this chunk's last one.
  if (into) out[words - 1] = 0;
  const hb = 2 * l.halves;
  for (let b = 0; b < blocks; b++) {
    const at = b * l.bytes;
    for (let h = 0; h < l.halves; h++) halves[b * l.halves + h] = raw[at + l.halvesAt + 2 * h] | (raw[at + l.halvesAt + 2 * h + 1] << 8);
    // The body: the block's bytes before and after its halves.
    bytes.set(raw.subarray(at, at + l.halvesAt), b * body);
    bytes.set(raw.subarray(at + l.halvesAt + hb, at + l.bytes), b * body + l.halvesAt);
  }
  return out;
}

/** The inverse of packBlocks (tests). */
export function unpackBlocks(type: QuantType, packed: Uint32Array, elements: number): Uint8Array {
  const l = BLOCK_LAYOUT[type], blocks = elements / l.elements, body = bodyBytes(type), hb = 2 * l.halves;
  const bytes = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  const halves = new Uint16Array(packed.buffer, packed.byteOffset + 4 * quantWords(type, elements), blocks * l.halves);
  const raw = new Uint8Array(blocks * l.bytes);
  for (let b = 0; b < blocks; b++) {
    const at = b * l.bytes;
    raw.set(bytes.subarray(b * body, b * body + l.halvesAt), at);
    for (let h = 0; h < l.halves; h++) {
      raw[at + l.halvesAt + 2 * h] = halves[b * l.halves + h] & 0xff;
      raw[at + l.halvesAt + 2 * h + 1] = halves[b * l.halves + h] >>> 8;
    }
    raw.set(bytes.subarray(b * body + l.halvesAt, (b + 1) * body), at + l.halvesAt + hb);
  }
  return raw;
}

/** f16 halves (the file's bytes, 2 per value) -> the device words: the same bytes, padded to 8-byte multiples. */
export function packHalves(raw: Uint8Array, elements: number): Uint32Array {
  if (raw.length !== 2 * elements) throw new Error(`f16: ${raw.length} bytes for ${elements} values`);
  const out = new Uint32Array(deviceWords('f16', elements));
  new Uint8Array(out.buffer).set(raw);
  return out;
}
