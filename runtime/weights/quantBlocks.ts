// GGUF q8_0 / q4_0 blocks -> the device layout of compiler/weightTypes.ts (quant
// words, then f16 scales two per word), and back. The quant bytes are copied
// unchanged (ggml's element and nibble order), so a kernel's dequantisation is
// the file's, bit for bit; only the 2-byte scale moves out of each block so that
// every quant word is 4-byte aligned.
import { deviceWords, QBLOCK, quantWords, type QuantType } from '../../compiler/weightTypes.ts';

const BLOCK_BYTES: Readonly<Record<QuantType, number>> = { q8_0: 34, q4_0: 18 };

/** Repacks `elements` weights of GGUF blocks (exactly the tensor's bytes). */
export function packBlocks(type: QuantType, raw: Uint8Array, elements: number): Uint32Array {
  const blocks = elements / QBLOCK, bb = BLOCK_BYTES[type], qb = bb - 2;
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
  const blocks = elements / QBLOCK, bb = BLOCK_BYTES[type], qb = bb - 2;
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
