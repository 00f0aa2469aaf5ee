// Weights onto a device, one param buffer at a time. A compact param (f16, or blocks) from a
// source that reads byte ranges (a GGUF file) streams: its bytes are read a few MiB at a
// time into reused host buffers, converted to the device layout (program/quant.ts) chunk by
// chunk, and uploaded at their offsets; the device is settled every SETTLE_BYTES so its
// staging copies drain. So the host holds a few MiB of any tensor, never a whole one, and no
// garbage accumulates for the JS collector to find later (why reused buffers: ArrayBuffers
// are freed only when V8 collects them, which on a load that allocates little on the JS heap
// can be hundreds of MiB late). Other params (f32, or sources without ranges) read the whole
// tensor once, kept while its consecutive parts upload.
import type { BufferDecl } from '../../program/program.ts';
import { BLOCK_LAYOUT, bodyBytes, deviceWords, isCompactType, packBlocks, packHalves, quantWords, weightBytes, type CompactType, type QuantType } from '../../program/quant.ts';
import type { WeightSource } from '../../program/weights.ts';
import { fromBf16, toHalf } from '../weights/ggufQuant.ts';
import { DeviceError, type Device, type DeviceBuffer } from './device.ts';

export class ParamUploadError extends DeviceError {}

const MiB = 1024 * 1024;
/** Uploaded bytes between waits for the device's staging copies to drain (see Device.settle). */
const SETTLE_BYTES = 64 * MiB;
/** File bytes per streamed chunk (rounded down to whole blocks, an even number of them). */
const CHUNK_BYTES = 8 * MiB;

export const paramName = (d: BufferDecl): string => d.part?.of ?? d.name.replace(/^param:/, '');

/** Streams params onto a device in program order; `finish` drops the last host copy. */
export class ParamUploader {
  private tensor: { name?: string; data?: Float32Array | { type: string; bytes: Uint8Array } } = {};
  private unsettled = 0;
  private readBuf = new Uint8Array(0);
  private outBuf = new Uint8Array(0);
  private packBuf = new Uint32Array(0);

  /** chunkBytes: file bytes per streamed chunk (tests make it small so that tensors span many). */
  constructor(private readonly device: Device, private readonly weights: WeightSource, private readonly chunkBytes = CHUNK_BYTES) {}

  async upload(buf: DeviceBuffer, d: BufferDecl): Promise<void> {
    const name = paramName(d);
    if (isCompactType(d.dtype) && this.weights.readRawInto) return this.stream(buf, d, name, d.dtype);
    if (this.tensor.name !== name) { this.finish(); this.tensor = { name, data: readParam(d, name, this.weights) }; }
    this.device.upload(buf, 0, paramData(d, name, this.tensor.data!));
    await this.uploaded(buf.bytes);
  }

  /** Drops the host copy of the tensor last read whole. */
  finish(): void {
    if (this.tensor.name !== undefined) this.weights.evict?.(this.tensor.name);
    this.tensor = {};
  }

  private async uploaded(bytes: number): Promise<void> {
    this.unsettled += bytes;
    if (this.unsettled >= SETTLE_BYTES && this.device.settle) { this.unsettled = 0; await this.device.settle(); }
  }

  /** The buffer's bytes of the tensor (a part: its columns, contiguous in storage order) a chunk at a time. */
  private async stream(buf: DeviceBuffer, d: BufferDecl, name: string, type: CompactType): Promise<void> {
    this.finish();
    const K = d.part ? d.elements / d.part.count : 0;
    const from = d.part ? weightBytes(type, d.part.first * K) : 0, total = weightBytes(type, d.elements);
    const unit = type === 'f16' ? 8 : 2 * BLOCK_LAYOUT[type].bytes;
    const chunk = Math.max(unit, Math.floor(this.chunkBytes / unit) * unit);
    if (this.readBuf.length < Math.min(chunk, total)) this.readBuf = new Uint8Array(Math.min(chunk, total));
    for (let at = 0; at < total; at += chunk) {
      const raw = this.readBuf.subarray(0, Math.min(chunk, total - at));
      const fileType = this.weights.readRawInto!(name, from + at, raw);
      if (type === 'f16') {
        if (fileType !== 'f16' && fileType !== 'bf16') throw mismatch(name, type, fileType);
        this.device.upload(buf, at, fileType === 'bf16' ? this.bf16Chunk(name, raw, (from + at) / 2) : raw);
      } else {
        if (fileType !== type) throw mismatch(name, type, fileType);
        this.blockChunk(buf, type, raw, at / BLOCK_LAYOUT[type].bytes, d.elements);
      }
      await this.uploaded(raw.length);
    }
  }

  /** Blocks [first, first + n) of a buffer of `elements` weights: bodies at their place in the body section, halves in the halves section. */
  private blockChunk(buf: DeviceBuffer, type: QuantType, raw: Uint8Array, first: number, elements: number): void {
    const l = BLOCK_LAYOUT[type], n = raw.length / l.bytes, body = bodyBytes(type);
    const words = deviceWords(type, n * l.elements);
    if (this.packBuf.length < words) this.packBuf = new Uint32Array(words);
    const packed = packBlocks(type, raw, n * l.elements, this.packBuf);
    const bytes = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
    this.device.upload(buf, first * body, bytes.subarray(0, n * body));
    // Chunks hold an even number of blocks, so each halves run starts on a word; the last may end mid-word (the buffer is padded to words).
    const halvesAt = 4 * quantWords(type, elements) + first * l.halves * 2;
    this.device.upload(buf, halvesAt, bytes.subarray(n * body, n * body + Math.ceil((n * l.halves * 2) / 4) * 4));
  }

  private bf16Chunk(name: string, raw: Uint8Array, firstElement: number): Uint8Array {
    if (this.outBuf.length < raw.length) this.outBuf = new Uint8Array(this.readBuf.length);
    return bf16ToF16(name, raw, this.outBuf.subarray(0, raw.length), firstElement);
  }
}

const mismatch = (name: string, type: string, fileType: string): ParamUploadError =>
  new ParamUploadError(`the program keeps weight ${name} as ${type}, but the weight file stores it as ${fileType} (compile with this file's tensor types)`);

/** A param's whole tensor from the weights: f32 values, or the file's f16 halves / blocks for a param kept compact (bf16 becomes f16). */
function readParam(d: BufferDecl, name: string, weights: WeightSource): Float32Array | { type: string; bytes: Uint8Array } {
  if (!isCompactType(d.dtype)) return weights.get(name);
  if (!weights.getRaw) throw new ParamUploadError(`the program keeps weight ${name} as ${d.dtype}, but this weight source has no raw tensors (compile without weight types to run it as f32)`);
  const raw = weights.getRaw(name);
  if (d.dtype === 'f16' && raw.type === 'bf16') return { type: 'f16', bytes: bf16ToF16(name, raw.bytes, new Uint8Array(raw.bytes.length), 0) };
  if (raw.type !== d.dtype) throw mismatch(name, d.dtype, raw.type);
  return raw;
}

/**
 * A param buffer's device data: its f32 values, or its f16 halves / blocks in the device
 * layout (program/quant.ts), of the whole tensor or of the part's columns (a [K, count]
 * slice, contiguous in storage order, and whole blocks since blocks run along K).
 */
function paramData(d: BufferDecl, name: string, t: Float32Array | { type: string; bytes: Uint8Array }): Float32Array | Uint32Array {
  const K = d.part ? d.elements / d.part.count : 0;
  const from = d.part ? d.part.first * K : 0;
  if (t instanceof Float32Array) {
    const data = d.part ? t.subarray(from, from + d.elements) : t;
    if (data.length !== d.elements) throw new ParamUploadError(`weight ${name} has ${t.length} values; the program expects ${d.part ? `columns ${d.part.first}..${d.part.first + d.part.count - 1} of ${K}` : d.elements}`);
    return data;
  }
  const type = d.dtype as CompactType;
  const at = d.part ? weightBytes(type, from) : 0, bytes = weightBytes(type, d.elements);
  if (at + bytes > t.bytes.length) throw new ParamUploadError(`weight ${name} has ${t.bytes.length} bytes of ${type}; the program expects ${at + bytes}`);
  const slice = t.bytes.subarray(at, at + bytes);
  return type === 'f16' ? packHalves(slice, d.elements) : packBlocks(type, slice, d.elements);
}

/**
 * bf16 -> f16 halves into `out` (program/quant.ts deviceWeightType says why); a value beyond
 * f16's range is refused, never made infinite. `first`: the tensor element bytes[0] holds, for the message.
 */
function bf16ToF16(name: string, bytes: Uint8Array, out: Uint8Array, first: number): Uint8Array {
  const n = bytes.length / 2;
  const src = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), dst = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < n; i++) {
    const v = fromBf16(src.getUint16(2 * i, true)), h = toHalf(v);
    if ((h & 0x7c00) === 0x7c00 && Number.isFinite(v)) {
      throw new ParamUploadError(`weight ${name}: value ${v} (element ${first + i}) is beyond f16's range, so this bf16 tensor cannot be kept as f16 on the device (run with --f32-weights)`);
    }
    dst.setUint16(2 * i, h, true);
  }
  return out;
}
