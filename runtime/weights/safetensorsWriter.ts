// Writes safetensors files (tests and fixtures): an 8-byte little-endian header
// length, the JSON header padded with spaces to a multiple of 8 bytes (as the
// reference implementation does, so the data section stays aligned), then each
// tensor's bytes in the order given.
import { writeFileSync } from 'node:fs';
import { toBf16, toHalf } from './ggufQuant.ts';
import { DTYPE_BYTES } from './safetensors.ts';

export type SafetensorsWriterTensor =
  | { readonly name: string; readonly dtype: 'F32' | 'F16' | 'BF16'; readonly shape: readonly number[]; readonly data: Float32Array }
  | { readonly name: string; readonly dtype: string; readonly shape: readonly number[]; readonly raw: Uint8Array };

export interface SafetensorsLayout {
  readonly size: number;
  /** Bytes of the JSON header (the u64 at byte 0). */
  readonly headerLength: number;
  readonly dataOffset: number;
  readonly tensors: readonly { name: string; begin: number; end: number; fileOffset: number }[];
}

function encode(t: SafetensorsWriterTensor): Uint8Array {
  if ('raw' in t) return t.raw;
  const n = t.data.length;
  if (t.dtype === 'F32') return new Uint8Array(Float32Array.from(t.data).buffer);
  const conv = t.dtype === 'F16' ? toHalf : toBf16;
  return new Uint8Array(Uint16Array.from({ length: n }, (_, i) => conv(t.data[i])).buffer);
}

export function writeSafetensors(path: string, tensors: readonly SafetensorsWriterTensor[], metadata?: Record<string, string>): SafetensorsLayout {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const datas = tensors.map((t) => {
    const bytes = encode(t);
    const elements = t.shape.reduce((a, b) => a * b, 1);
    const width = DTYPE_BYTES[t.dtype];
    if (width === undefined) throw new Error(`tensor ${t.name}: unknown dtype ${t.dtype}`);
    if (bytes.length !== elements * width) throw new Error(`tensor ${t.name}: ${bytes.length} bytes for shape [${t.shape.join(', ')}] of ${t.dtype}`);
    return bytes;
  });
  let offset = 0;
  const placed = tensors.map((t, i) => {
    const begin = offset;
    offset += datas[i].length;
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [begin, offset] };
    return { name: t.name, begin, end: offset };
  });
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  const dataOffset = 8 + head.length;
  datas.forEach((d, i) => out.set(d, dataOffset + placed[i].begin));
  writeFileSync(path, out);
  return { size: out.length, headerLength: head.length, dataOffset, tensors: placed.map((t) => ({ ...t, fileOffset: dataOffset + t.begin })) };
}
