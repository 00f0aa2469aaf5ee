// A GGUF file already in memory (fetched, or read from a Blob) as a model's weights: the
// same header parser and tensor binding as the node reader (runtime/weights/), reading
// through a cursor over the bytes instead of a file handle. Tensors stay views of the
// bytes until the device uploads them; f32 copies are made only when asked for.
import type { ParamInfo } from '../../program/model.ts';
import type { WeightSource } from '../../program/weights.ts';
import { bindTensor } from '../weights/ggufBind.ts';
import { bytesReader, FileCursor } from '../weights/ggufCursor.ts';
import { parseHeader } from '../weights/ggufFormat.ts';
import { dequantize } from '../weights/ggufQuant.ts';
import { GgufError, type DequantType, type GgufTensorInfo, type GgufValue } from '../weights/ggufTypes.ts';

export const isGguf = (bytes: Uint8Array): boolean => bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46;

export class GgufBytesWeights implements WeightSource {
  readonly metadata: ReadonlyMap<string, GgufValue>;
  private readonly bound = new Map<string, GgufTensorInfo>();
  private readonly data = new Map<string, Float32Array>();
  private bytes: Uint8Array | null;

  /** Parses the header and binds every param (name, shape, loadable type) before any is read. */
  constructor(bytes: Uint8Array, readonly name: string, params: readonly ParamInfo[]) {
    const h = parseHeader(new FileCursor(bytesReader(bytes), bytes.length, name));
    const byName = new Map(h.tensors.map((t) => [t.name, t]));
    const index = { path: name, tensors: h.tensors, dataOffset: h.dataOffset, tensor: (n: string) => byName.get(n) };
    for (const p of params) this.bound.set(p.name, bindTensor(index, p));
    this.metadata = h.metadata;
    this.bytes = bytes;
  }

  getRaw(param: string): { readonly type: string; readonly bytes: Uint8Array } {
    const t = this.tensor(param);
    return { type: t.type.name, bytes: this.bytes!.subarray(t.fileOffset, t.fileOffset + t.bytes) };
  }

  get(param: string): Float32Array {
    let f = this.data.get(param);
    if (!f) {
      const t = this.tensor(param);
      f = dequantize(t.type.name as DequantType, this.getRaw(param).bytes, t.elements);
      this.data.set(param, f);
    }
    return f;
  }

  release(): void { this.bytes = null; this.data.clear(); }

  private tensor(param: string): GgufTensorInfo {
    const t = this.bound.get(param);
    if (!t || !this.bytes) throw new GgufError(this.name, 0, `no loaded tensor for parameter ${param} (not a param of this model, or release() was called)`);
    return t;
  }
}
