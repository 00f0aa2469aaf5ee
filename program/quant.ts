// Weight dtypes a Program can keep on the device: their byte counts and their one
// device block layout, which the compiler (sizes, cost.ts), the runtime (packBlocks at
// upload) and the kernels (backends/*/templates dequant partials, fed from the
// constants here) all read from this file.
//
// Device layout of a quantised [K, N] param (N rows of K weights, K % 32 == 0),
// one array<u32> binding in two sections:
//   quants: every block's quant bytes, blocks in file order (row n's blocks are
//           n*K/32 .. (n+1)*K/32-1), copied byte for byte: q8_0 = 8 words per block
//           (4 int8 per word, element order), q4_0 = 4 words (ggml nibble order:
//           byte i's low nibble is element i, high nibble element i+16);
//   scales: the blocks' f16 scales, two per word (block b in half b%2 of word b/2),
//           starting at word `quantWords(type, elements)`.
// A 3-D expert param [K, N, E] is the same thing for the flat [K, N * E] matrix: expert
// e's rows are rows e*N .. (e+1)*N-1, so its blocks start at block e*N*K/32 (GGUF's
// own order for merged experts), and the expert kernel adds that offset.
// Why repack instead of uploading the 34- or 18-byte blocks as they are: those sizes
// are not multiples of 4, so a u32 view of the raw file would put a block's quants
// at 2-byte offsets and every read would need two words and shifts. Split sections
// keep every quant word aligned, read with one load, and cost exactly the file's
// bytes (34 and 18 bytes per 32 weights; at most 2 bytes of padding per tensor).
export type WeightType = 'f32' | 'q8_0' | 'q4_0';
export type QuantType = Exclude<WeightType, 'f32'>;

/** Weights per quant block. */
export const QBLOCK = 32;
/** u32 words of quants per block. */
export const QUANT_WORDS_PER_BLOCK: Readonly<Record<QuantType, number>> = { q8_0: 8, q4_0: 4 };

export const isQuantType = (t: string | undefined): t is QuantType => t === 'q8_0' || t === 'q4_0';

/** Words of the quant section (the scale section starts here). */
export function quantWords(type: QuantType, elements: number): number {
  return (elements / QBLOCK) * QUANT_WORDS_PER_BLOCK[type];
}

/** Words of the whole device buffer of a quantised tensor. */
export function deviceWords(type: QuantType, elements: number): number {
  return quantWords(type, elements) + Math.ceil(elements / QBLOCK / 2);
}

/** Bytes a kernel reads for `elements` weights of this type (the file's size for q-types). */
export function weightBytes(type: WeightType, elements: number): number {
  switch (type) {
    case 'f32': return 4 * elements;
    default: return (elements / QBLOCK) * QUANT_BLOCK_BYTES[type];
  }
}

/** Bytes of one GGUF block of each quant type: an f16 scale, then the quants. */
export const QUANT_BLOCK_BYTES: Readonly<Record<QuantType, number>> = { q8_0: 34, q4_0: 18 };

// GGUF blocks -> the device layout above (quant words, then f16 scales two per word), and
// back. The quant bytes are copied unchanged (ggml's element and nibble order), so a
// kernel's dequantisation is the file's, bit for bit; only the 2-byte scale moves out of
// each block so that every quant word is 4-byte aligned.
/** Repacks `elements` weights of GGUF blocks (exactly the tensor's bytes). */
export function packBlocks(type: QuantType, raw: Uint8Array, elements: number): Uint32Array {
  const blocks = elements / QBLOCK, bb = QUANT_BLOCK_BYTES[type], qb = bb - 2;
  if (!Number.isInteger(blocks)) throw new Error(`${type}: ${elements} weights are not whole blocks of ${QBLOCK}`);
  if (raw.length !== blocks * bb) throw new Error(`${type}: ${raw.length} bytes for ${blocks} blocks of ${bb} bytes`);
  const out = new Uint32Array(deviceWords(type, elements));
  const bytes = new Uint8Array(out.buffer);
  const scales = new Uint16Array(out.buffer, 4 * quantWords(type, elements));
  for (let b = 0; b < blocks; b++) {
    const at = b * bb;
    scales[b] = raw[at] | (raw[at + 1] << 8);
    bytes.set(raw.subarray(at + 2, at + bb), b * qb);
  }
  return out;
}

/** The inverse of packBlocks (tests). */
export function unpackBlocks(type: QuantType, packed: Uint32Array, elements: number): Uint8Array {
  const blocks = elements / QBLOCK, bb = QUANT_BLOCK_BYTES[type], qb = bb - 2;
  const bytes = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  const scales = new Uint16Array(packed.buffer, packed.byteOffset + 4 * quantWords(type, elements), blocks);
  const raw = new Uint8Array(blocks * bb);
  for (let b = 0; b < blocks; b++) {
    raw[b * bb] = scales[b] & 0xff;
    raw[b * bb + 1] = scales[b] >>> 8;
    raw.set(bytes.subarray(b * qb, (b + 1) * qb), b * bb + 2);
  }
  return raw;
}