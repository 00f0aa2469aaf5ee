// safetensors files: an 8-byte little-endian header length, a JSON header
// ({ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} }),
// then the raw tensor bytes, offsets relative to the end of the header. The
// header is read and checked in full on open (sizes, bounds, overlaps, dtypes),
// so a bad file fails before any tensor is read; tensors are then read one at a
// time through a file handle. Every failure is a SafetensorsError naming the
// file, the byte offset and, when there is one, the tensor.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { fromBf16, fromHalf } from './ggufQuant.ts';

export class SafetensorsError extends Error {
  constructor(readonly file: string, readonly offset: number, readonly detail: string, readonly tensor?: string) {
    super(`${file}: byte ${offset}: ${tensor !== undefined ? `tensor ${tensor}: ` : ''}${detail}`);
    this.name = 'SafetensorsError';
  }
}

/** Bytes per element of every dtype the format defines (so any valid file's header checks out). */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};
/** The dtypes infer loads (as f32). */
export const LOADABLE_DTYPES = ['F32', 'F16', 'BF16'] as const;

export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: string;
  /** Row-major, slowest dimension first (PyTorch order: a Linear weight is [out, in]). */
  readonly shape: readonly number[];
  readonly elements: number;
  readonly bytes: number;
  /** Absolute byte position of the data in the file. */
  readonly fileOffset: number;
}

/** The format's own cap on the header (100 MB), which also bounds what a lying length makes us allocate. */
const MAX_HEADER = 100_000_000;

export class SafetensorsFile {
  readonly tensors: readonly SafetensorsTensor[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly dataOffset: number;
  private readonly byName: Map<string, SafetensorsTensor>;
  private fd: number | null;

  private constructor(readonly path: string, fd: number, readonly size: number) {
    this.fd = fd;
    const h = parseHeader(path, (at, n) => this.read(at, n), size);
    this.tensors = h.tensors;
    this.metadata = h.metadata;
    this.dataOffset = h.dataOffset;
    this.byName = new Map(h.tensors.map((t) => [t.name, t]));
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new SafetensorsError(path, 0, `cannot open: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new SafetensorsError(path, 0, 'not a regular file');
      return new SafetensorsFile(path, fd, st.size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  static with<R>(path: string, f: (s: SafetensorsFile) => R): R {
    const s = SafetensorsFile.open(path);
    try { return f(s); } finally { s.close(); }
  }

  tensor(name: string): SafetensorsTensor | undefined { return this.byName.get(name); }

  /** The tensor's bytes as stored. */
  readRaw(t: SafetensorsTensor): Uint8Array { return this.read(t.fileOffset, t.bytes, t.name); }

  /** The tensor as f32 (F32, F16, BF16), in the file's element order. */
  readFloat32(t: SafetensorsTensor): Float32Array {
    if (!(LOADABLE_DTYPES as readonly string[]).includes(t.dtype)) {
      throw new SafetensorsError(this.path, t.fileOffset, `dtype ${t.dtype} cannot be loaded (supported: ${LOADABLE_DTYPES.join(', ')})`, t.name);
    }
    const raw = this.readRaw(t);
    if (t.dtype === 'F32') return new Float32Array(raw.buffer, 0, t.elements);
    const halves = new Uint16Array(raw.buffer, 0, t.elements);
    const out = new Float32Array(t.elements);
    const conv = t.dtype === 'F16' ? fromHalf : fromBf16;
    for (let i = 0; i < out.length; i++) out[i] = conv(halves[i]);
    return out;
  }

  close(): void {
    if (this.fd !== null) { closeSync(this.fd); this.fd = null; }
  }

  private read(at: number, n: number, tensor?: string): Uint8Array {
    if (this.fd === null) throw new SafetensorsError(this.path, at, 'the file was closed', tensor);
    const buf = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const r = readSync(this.fd, buf, got, n - got, at + got);
      if (r === 0) throw new SafetensorsError(this.path, at + got, `truncated: the file ended while reading ${n} bytes (did it change after opening?)`, tensor);
      got += r;
    }
    return buf;
  }
}

function parseHeader(path: string, read: (at: number, n: number) => Uint8Array, size: number) {
  const fail = (at: number, detail: string, tensor?: string): never => { throw new SafetensorsError(path, at, detail, tensor); };
  if (size < 8) fail(0, `truncated: the file has ${size} bytes; a safetensors file starts with an 8-byte header length`);
  const len = new DataView(read(0, 8).buffer).getBigUint64(0, true);
  if (len > BigInt(MAX_HEADER)) fail(0, `the header length ${len} is over the format's limit of ${MAX_HEADER} bytes (not a safetensors file?)`);
  const n = Number(len);
  if (n < 2) fail(0, `the header length ${n} is too small for a JSON object`);
  if (8 + n > size) fail(0, `truncated: the header length says ${n} bytes of JSON follow, but the file has only ${size - 8} more`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(read(8, n));
  } catch {
    return fail(8, 'bad header: not UTF-8 text');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // V8 says where ("... at position 17"); point at that byte.
    const pos = /position (\d+)/.exec((e as Error).message);
    return fail(8 + (pos ? Number(pos[1]) : 0), `bad header JSON: ${(e as Error).message.slice(0, 200)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail(8, 'bad header: the JSON is not an object of tensors');
  const dataOffset = 8 + n;
  const dataBytes = size - dataOffset;
  const tensors: SafetensorsTensor[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) fail(8, 'bad header: __metadata__ must map strings to strings');
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(8, 'bad header: the entry is not an object', name);
    if (typeof e.dtype !== 'string') fail(8, 'bad header: no dtype string', name);
    const dtype = e.dtype as string;
    const width = DTYPE_BYTES[dtype];
    if (width === undefined) fail(8, `unknown dtype ${JSON.stringify(dtype.slice(0, 20))} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`, name);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(8, 'bad header: shape must be an array of non-negative integers', name);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[0] > offs[1]) {
      fail(8, 'bad header: data_offsets must be [begin, end] with 0 <= begin <= end', name);
    }
    const [begin, end] = offs as [number, number];
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    const bytes = elements * width;
    if (end - begin !== bytes) fail(dataOffset + begin, `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${bytes}`, name);
    if (end > dataBytes) fail(dataOffset + begin, `data_offsets [${begin}, ${end}] run past the end of the file (its data section has ${dataBytes} bytes)`, name);
    tensors.push({ name, dtype, shape: shape as number[], elements, bytes, fileOffset: dataOffset + begin });
  }
  // Tensors may come in any order in the header, but their bytes must not share space.
  const sorted = [...tensors].filter((t) => t.bytes > 0).sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1], t = sorted[i];
    if (t.fileOffset < prev.fileOffset + prev.bytes) {
      fail(t.fileOffset, `data overlaps tensor ${prev.name} (bytes ${prev.fileOffset - dataOffset}..${prev.fileOffset - dataOffset + prev.bytes} of the data section)`, t.name);
    }
  }
  return { tensors, metadata, dataOffset };
}
