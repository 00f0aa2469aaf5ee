// Writes GGUF v3 files (v2 on request: the same layout): metadata of every value
// type and tensors given as f32 values (encoded here as f32, f16, bf16, q8_0,
// q4_0, q4_K, q5_K or q6_K) or as raw bytes of any known type. Tests and fixtures make their
// model files with it; there are no model files to download. Tensor data follows
// llama.cpp's layout: offsets are the running sum of sizes padded to the alignment.
import { closeSync, openSync, writeSync } from 'node:fs';
import { quantize } from './ggufQuant.ts';
import {
  alignUp, ARRAY_CTORS, DEFAULT_ALIGNMENT, GGUF_MAGIC, tensorBytes, tensorType, VALUE_TYPES,
  type EncodeType, type GgufArray, type GgufValue, type GgufValueType, type NumberType,
} from './ggufTypes.ts';

export type WriterTensor =
  /**
   * data: the values, or a function making them when the tensor is written (a large model is
   * never all in memory): all at once, or in chunks of whole blocks that are encoded and
   * written one by one (a chunk may reuse the previous one's buffer).
   */
  | { readonly name: string; readonly dims: readonly number[]; readonly type: EncodeType; readonly data: Float32Array | (() => Float32Array | Iterable<Float32Array>) }
  | { readonly name: string; readonly dims: readonly number[]; readonly type: string; readonly raw: Uint8Array };

export interface WriteOptions {
  readonly version?: 2 | 3; readonly alignment?: number;
  /** Called after each tensor is written (index in `tensors`): progress for large files. */
  readonly onTensor?: (name: string, index: number) => void;
}

/** Where things landed, so tests can corrupt exact fields. */
export interface GgufLayout {
  readonly size: number;
  readonly dataOffset: number;
  readonly tensorCountOffset: number;
  readonly tensors: readonly { name: string; infoOffset: number; typeOffset: number; offsetOffset: number; dimsOffset: number; fileOffset: number; bytes: number }[];
}

/** Shorthands for typed metadata values. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: 'u8', value }),
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  f64: (value: number): GgufValue => ({ type: 'f64', value }),
  u64: (value: bigint | number): GgufValue => ({ type: 'u64', value: BigInt(value) }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  strs: (value: readonly string[]): GgufValue => ({ type: 'array', itemType: 'string', value }),
  f32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'f32', value: Float32Array.from(value) }),
  i32s: (value: ArrayLike<number>): GgufValue => ({ type: 'array', itemType: 'i32', value: Int32Array.from(value) }),
};

/** A growable little-endian byte buffer for the header. */
class Bytes {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf);
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // room() may replace the buffer, so it runs before this.dv / this.buf are read.
  u8(v: number): void { const at = this.room(1); this.dv.setUint8(at, v); }
  u32(v: number): void { const at = this.room(4); this.dv.setUint32(at, v, true); }
  u64(v: bigint | number): void { const at = this.room(8); this.dv.setBigUint64(at, BigInt(v), true); }
  raw(b: Uint8Array): void { const at = this.room(b.length); this.buf.set(b, at); }
  string(s: string): void { const b = new TextEncoder().encode(s); this.u64(b.length); this.raw(b); }
  scalar(type: NumberType, v: number): void {
    const at = this.room(SIZES[type]);
    const set = { u8: 'setUint8', i8: 'setInt8', u16: 'setUint16', i16: 'setInt16', u32: 'setUint32', i32: 'setInt32', f32: 'setFloat32', f64: 'setFloat64' } as const;
    (this.dv[set[type]] as (o: number, v: number, le: boolean) => void).call(this.dv, at, v, true);
  }
  bytes(): Uint8Array { return this.buf.subarray(0, this.length); }
}

const SIZES: Record<NumberType, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, f64: 8 };
const typeId = (t: GgufValueType): number => VALUE_TYPES.indexOf(t);

function putValue(b: Bytes, v: GgufValue): void {
  switch (v.type) {
    case 'bool': b.u8(v.value ? 1 : 0); break;
    case 'string': b.string(v.value); break;
    case 'u64': case 'i64': { const a = new ARRAY_CTORS[v.type](1); a[0] = v.value; b.raw(new Uint8Array(a.buffer)); break; }
    case 'array': putArray(b, v); break;
    default: b.scalar(v.type, v.value);
  }
}

function putArray(b: Bytes, a: GgufArray): void {
  b.u32(typeId(a.itemType));
  b.u64(a.value.length);
  if (a.itemType === 'string') for (const s of a.value) b.string(s);
  else if (a.itemType === 'bool') for (const x of a.value) b.u8(x ? 1 : 0);
  else if (a.itemType === 'array') for (const x of a.value) putArray(b, x);
  else {
    // Numeric: the typed array's bytes (a fresh copy in the declared item type).
    const typed = new ARRAY_CTORS[a.itemType](a.value.length);
    (typed as unknown as { set(x: ArrayLike<number | bigint>): void }).set(a.value as ArrayLike<number | bigint>);
    b.raw(new Uint8Array(typed.buffer));
  }
}

/** Writes a GGUF file; returns its layout. */
export function writeGguf(path: string, metadata: Iterable<readonly [string, GgufValue]>, tensors: readonly WriterTensor[], opts: WriteOptions = {}): GgufLayout {
  const meta = new Map(metadata);
  const al = meta.get('general.alignment');
  const alignment = al?.type === 'u32' ? al.value : opts.alignment ?? DEFAULT_ALIGNMENT;
  const onTensor = opts.onTensor;
  if (!al && alignment !== DEFAULT_ALIGNMENT) meta.set('general.alignment', gv.u32(alignment));

  const h = new Bytes();
  h.u32(GGUF_MAGIC);
  h.u32(opts.version ?? 3);
  const tensorCountOffset = h.length;
  h.u64(tensors.length);
  h.u64(meta.size);
  for (const [key, v] of meta) { h.string(key); h.u32(typeId(v.type)); putValue(h, v); }

  const sizes = tensors.map((t) => {
    const type = tensorType(t.type);
    const elements = t.dims.reduce((a, b) => a * b, 1);
    if (t.dims[0] % type.blockSize !== 0) throw new Error(`tensor ${t.name}: ${type.name} packs ${type.blockSize} values per block, but dim 0 is ${t.dims[0]}`);
    const bytes = tensorBytes(type, elements);
    if ('raw' in t && t.raw.length !== bytes) throw new Error(`tensor ${t.name}: ${t.raw.length} raw bytes given, ${bytes} expected`);
    if ('data' in t && typeof t.data !== 'function' && t.data.length !== elements) throw new Error(`tensor ${t.name}: ${t.data.length} values given, ${elements} expected`);
    return bytes;
  });
  const infos: { name: string; infoOffset: number; typeOffset: number; offsetOffset: number; dimsOffset: number; offset: number; bytes: number }[] = [];
  let offset = 0;
  tensors.forEach((t, i) => {
    const infoOffset = h.length;
    h.string(t.name);
    h.u32(t.dims.length);
    const dimsOffset = h.length;
    for (const d of t.dims) h.u64(d);
    const typeOffset = h.length;
    h.u32(tensorType(t.type).id);
    const offsetOffset = h.length;
    h.u64(offset);
    infos.push({ name: t.name, infoOffset, typeOffset, offsetOffset, dimsOffset, offset, bytes: sizes[i] });
    offset += alignUp(sizes[i], alignment);
  });
  const dataOffset = alignUp(h.length, alignment);

  const fd = openSync(path, 'w');
  try {
    writeSync(fd, h.bytes());
    let pos = h.length;
    const pad = (to: number) => { if (to > pos) writeSync(fd, new Uint8Array(to - pos)); pos = Math.max(pos, to); };
    tensors.forEach((t, i) => {
      pad(dataOffset + infos[i].offset);
      const elements = t.dims.reduce((a, b) => a * b, 1);
      if ('raw' in t) { writeSync(fd, t.raw); pos += t.raw.length; onTensor?.(t.name, i); return; }
      const data = typeof t.data === 'function' ? t.data() : t.data;
      let given = 0;
      for (const chunk of data instanceof Float32Array ? [data] : data) {
        const block = tensorType(t.type).blockSize;
        if (chunk.length % block !== 0) throw new Error(`tensor ${t.name}: a chunk of ${chunk.length} values is not whole ${t.type} blocks of ${block}`);
        given += chunk.length;
        if (given > elements) break;
        const bytes = quantize(t.type, chunk);
        writeSync(fd, bytes);
        pos += bytes.length;
      }
      if (given !== elements) throw new Error(`tensor ${t.name}: ${given > elements ? 'more than' : given} values given, ${elements} expected`);
      onTensor?.(t.name, i);
    });
    // llama.cpp expects the data section padded to the alignment after the last tensor too.
    pad(alignUp(pos, alignment));
    return {
      size: pos, dataOffset, tensorCountOffset,
      tensors: infos.map((t) => ({ name: t.name, infoOffset: t.infoOffset, typeOffset: t.typeOffset, offsetOffset: t.offsetOffset, dimsOffset: t.dimsOffset, fileOffset: dataOffset + t.offset, bytes: t.bytes })),
    };
  } finally {
    closeSync(fd);
  }
}
