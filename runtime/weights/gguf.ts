// GGUF model files: GgufFile reads the header once and then single tensors by
// offset through a file handle (one buffer per tensor; the file is never read
// whole), as raw blocks (for a device path that dequantises in its kernels) or
// as Float32Array. GgufWeights binds a spec's params to a file's tensors by
// GGUF's names, validates all of them before reading any, and reads each when
// asked (a device upload streams the file tensor by tensor), with a progress callback.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { ParamInfo } from '../../program/model.ts';
import { FileCursor } from './ggufCursor.ts';
import { parseHeader } from './ggufFormat.ts';
import { dequantize } from './ggufQuant.ts';
import { DEQUANT_TYPES, GgufError, type DequantType, type GgufTensorInfo, type GgufValue } from './ggufTypes.ts';
import type { ShapedWeightSource } from './random.ts';
import { bindTensor } from './ggufBind.ts';

export { GgufError } from './ggufTypes.ts';
export { bindTensor, ggufTensorName } from './ggufBind.ts';
export type { GgufTensorInfo, GgufValue } from './ggufTypes.ts';

// Typed arrays over file bytes assume a little-endian host (every platform node ships on).
if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) throw new Error('GGUF reading needs a little-endian host');

export class GgufFile {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  readonly dataOffset: number;
  private readonly byName: Map<string, GgufTensorInfo>;
  private fd: number | null;

  private constructor(readonly path: string, fd: number, readonly size: number) {
    this.fd = fd;
    const h = parseHeader(new FileCursor((b, o, l, p) => readSync(fd, b, o, l, p), size, path));
    this.version = h.version;
    this.metadata = h.metadata;
    this.tensors = h.tensors;
    this.alignment = h.alignment;
    this.dataOffset = h.dataOffset;
    this.byName = new Map(h.tensors.map((t) => [t.name, t]));
  }

  /** Opens and parses the header; throws GgufError on any defect. Close it when done. */
  static open(path: string): GgufFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new GgufError(path, 0, `cannot open: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new GgufError(path, 0, 'not a regular file');
      return new GgufFile(path, fd, st.size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Opens, runs `f`, and closes the file whatever happens. */
  static with<R>(path: string, f: (g: GgufFile) => R): R {
    const g = GgufFile.open(path);
    try { return f(g); } finally { g.close(); }
  }

  tensor(name: string): GgufTensorInfo | undefined { return this.byName.get(name); }

  get(key: string): GgufValue | undefined { return this.metadata.get(key); }

  /** A numeric scalar (any integer or float type; 64-bit values must be exact as numbers). */
  number(key: string): number | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type === 'u64' || v.type === 'i64') {
      if (v.value > BigInt(Number.MAX_SAFE_INTEGER) || v.value < -BigInt(Number.MAX_SAFE_INTEGER)) throw this.metaError(key, `${v.value} is too large`);
      return Number(v.value);
    }
    if (v.type === 'string' || v.type === 'bool' || v.type === 'array') throw this.metaError(key, `expected a number, got ${v.type === 'array' ? `an array of ${v.itemType}` : `a ${v.type}`}`);
    return v.value as number;
  }

  string(key: string): string | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type !== 'string') throw this.metaError(key, `expected a string, got ${v.type}`);
    return v.value;
  }

  private metaError(key: string, detail: string): GgufError {
    return new GgufError(this.path, 0, `metadata '${key}': ${detail}`);
  }

  /** The tensor's bytes exactly as stored (quantised blocks stay blocks). */
  readRaw(t: GgufTensorInfo): Uint8Array {
    return this.readRawInto(t, 0, new Uint8Array(t.bytes));
  }

  /** into.length of the tensor's stored bytes from `offset` (within the tensor) into `into`. */
  readRawInto(t: GgufTensorInfo, offset: number, into: Uint8Array): Uint8Array {
    if (this.fd === null) throw new GgufError(this.path, t.fileOffset, 'the file was closed', t.name);
    if (!Number.isInteger(offset) || offset < 0 || offset + into.length > t.bytes) {
      throw new GgufError(this.path, t.fileOffset, `bytes ${offset}..${offset + into.length} asked of a tensor of ${t.bytes} bytes`, t.name);
    }
    let got = 0;
    while (got < into.length) {
      const r = readSync(this.fd, into, got, into.length - got, t.fileOffset + offset + got);
      if (r === 0) throw new GgufError(this.path, t.fileOffset + offset + got, `truncated: the file ended while reading ${t.bytes} bytes of data (did it change after opening?)`, t.name);
      got += r;
    }
    return into;
  }

  /** The tensor dequantised to f32, in storage order. */
  readFloat32(t: GgufTensorInfo): Float32Array {
    if (!(DEQUANT_TYPES as readonly string[]).includes(t.type.name)) {
      throw new GgufError(this.path, t.infoOffset, `type ${t.type.name} cannot be loaded (supported: ${DEQUANT_TYPES.join(', ')})`, t.name);
    }
    return dequantize(t.type.name as DequantType, this.readRaw(t), t.elements);
  }

  close(): void {
    if (this.fd !== null) { closeSync(this.fd); this.fd = null; }
  }
}

export interface GgufProgress {
  readonly tensor: string;
  /** Tensors read whole so far (a tensor streamed in chunks counts when its last chunk is read) and in all. */
  readonly index: number;
  readonly count: number;
  /** File bytes read so far and in all. */
  readonly bytes: number;
  readonly totalBytes: number;
}

export interface GgufLoadOptions { readonly onProgress?: (p: GgufProgress) => void }

/**
 * A spec's weights from a GGUF file, streamed: `load` checks every param against the
 * header (name, shape, loadable type) and keeps the file open; nothing is read until a
 * tensor is asked for. `getRaw` reads a tensor's bytes as the file stores them (quantised
 * blocks stay blocks, for a device that dequantises in its kernels) and keeps nothing;
 * `get` dequantises to f32 and keeps the result (the CPU engine reads every param each
 * forward) until `evict` (the device holds it now) or `release`. So a device load holds
 * one tensor at a time on the host, never the file. `readRawInto` reads a byte range of a
 * tensor into the caller's buffer (a streamed upload: a few MiB on the host, not a tensor).
 * Progress is reported as bytes are first read, in whatever order the reader asks for them.
 */
export class GgufWeights implements ShapedWeightSource {
  private readonly tensors = new Map<string, GgufTensorInfo>();
  private readonly data = new Map<string, Float32Array>();
  /** File bytes of each tensor read so far (for progress), and how many tensors have been read whole. */
  private readonly counted = new Map<string, number>();
  private complete = 0;
  private readonly totalBytes: number;
  private bytesRead = 0;

  private constructor(readonly params: readonly ParamInfo[], private file: GgufFile | null, private readonly opts: GgufLoadOptions) {
    for (const p of params) this.tensors.set(p.name, bindTensor(file!, p));
    this.totalBytes = [...this.tensors.values()].reduce((s, t) => s + t.bytes, 0);
  }

  get path(): string { return this.file?.path ?? '(released)'; }

  /** Opens the file and checks every param against its header; tensors are read on demand. */
  static load(path: string, params: readonly ParamInfo[], opts: GgufLoadOptions = {}): GgufWeights {
    const g = GgufFile.open(path);
    try { return new GgufWeights(params, g, opts); } catch (e) { g.close(); throw e; }
  }

  /** Binds the params to an open file (which the caller keeps open while this is used, and closes). */
  static fromFile(g: GgufFile, params: readonly ParamInfo[], opts: GgufLoadOptions = {}): GgufWeights {
    return new GgufWeights(params, g, opts);
  }

  /** The file's ggml type name per param (what compileSpec's `weightTypes` takes). */
  types(): Map<string, string> {
    return new Map([...this.tensors].map(([name, t]) => [name, t.type.name]));
  }

  private tensorFor(name: string): GgufTensorInfo & { file: GgufFile } {
    const t = this.tensors.get(name);
    if (!t || !this.file) throw new GgufError(this.path, 0, `no tensor for parameter ${name} (${this.file ? `the spec's ${this.tensors.size} params do not include it` : 'release() was called'})`);
    return { ...t, file: this.file };
  }

  /** Counts bytes read for the progress callback: the first read of each byte range of a tensor (parts and chunks read disjoint ranges). */
  private progress(t: GgufTensorInfo, bytes: number, whole: boolean): void {
    const before = this.counted.get(t.name) ?? 0;
    const now = whole ? t.bytes : Math.min(t.bytes, before + bytes);
    if (now === before) return;
    this.counted.set(t.name, now);
    this.bytesRead += now - before;
    if (now === t.bytes) this.complete++;
    this.opts.onProgress?.({ tensor: t.name, index: this.complete, count: this.tensors.size, bytes: this.bytesRead, totalBytes: this.totalBytes });
  }

  private read(name: string): { type: string; bytes: Uint8Array; elements: number } {
    const t = this.tensorFor(name);
    const bytes = t.file.readRaw(t);
    this.progress(t, t.bytes, true);
    return { type: t.type.name, bytes, elements: t.elements };
  }

  readRawInto(name: string, byteOffset: number, into: Uint8Array): string {
    const t = this.tensorFor(name);
    t.file.readRawInto(t, byteOffset, into);
    this.progress(t, into.length, false);
    return t.type.name;
  }

  get(name: string): Float32Array {
    let t = this.data.get(name);
    if (t) return t;
    const r = this.read(name);
    t = dequantize(r.type as DequantType, r.bytes, r.elements);
    this.data.set(name, t);
    return t;
  }

  getRaw(name: string): { readonly type: string; readonly bytes: Uint8Array } {
    return this.read(name);
  }

  /** Drops the f32 copy of one tensor (a device holds it now). */
  evict(name: string): void { this.data.delete(name); }

  /** Drops every copy and closes the file (e.g. once uploaded to a GPU). */
  release(): void {
    this.data.clear();
    this.file?.close();
    this.file = null;
  }
}
