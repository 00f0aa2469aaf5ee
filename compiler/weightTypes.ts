// Weight dtypes a Program can keep on the device, and their byte counts. The
// compiler only needs the sizes (so cost.ts and buffer allocation agree); the
// block layout itself lives with the reader (runtime/weights/quantBlocks.ts) and
// the kernels (backends/wgsl/templates/dequant.hbs).
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

export const QUANT_TYPES: readonly QuantType[] = ['q8_0', 'q4_0'];
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
    case 'q8_0': return (elements / QBLOCK) * 34;
    case 'q4_0': return (elements / QBLOCK) * 18;
  }
}
