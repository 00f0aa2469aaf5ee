// Where a generated module's weights come from, read to bytes with a progress callback:
// a URL (fetched and streamed), a File or Blob (streamed), an ArrayBuffer or typed array,
// or a loader object (the node entry's weightsFromPath: a file read by its own reader).
// Browser-safe: fetch, Blob and ReadableStream are web platform APIs that node has too.
import type { ModelInfo, ParamInfo } from '../../program/model.ts';
import type { WeightSource } from '../../program/weights.ts';
import type { GgufValue } from '../weights/ggufTypes.ts';

export interface LoadProgress {
  /** What is being read (a URL, a file name, 'bytes'). */
  readonly source: string;
  readonly loadedBytes: number;
  /** Undefined when the size is not known in advance (a response without content-length). */
  readonly totalBytes: number | undefined;
}

export type ProgressCallback = (p: LoadProgress) => void;

/** Weights bound to a model's params, and the file's metadata when it has some (a GGUF tokenizer). */
export interface LoadedWeights {
  readonly source: WeightSource;
  readonly metadata?: ReadonlyMap<string, GgufValue>;
}

/** A source that reads and binds weights itself (e.g. a node file path: runtime/embed/node.ts). */
export interface WeightsLoader {
  readonly kind: 'loader';
  readonly name: string;
  /** `model`: the sizes a reader may need (a safetensors checkpoint's q/k rows are reordered per head). */
  load(params: readonly ParamInfo[], onProgress?: ProgressCallback, model?: Pick<ModelInfo, 'heads' | 'kvHeads'>): Promise<LoadedWeights>;
}

/** 'random': the spec's own seeded weights (only for a spec that says `weights random(seed = N)`). */
export type WeightsInput = URL | string | Blob | ArrayBuffer | ArrayBufferView | WeightsLoader | 'random';

export class WeightsInputError extends Error {}

/** The bytes of a URL, Blob or buffer input (not of a loader or 'random'). */
export async function readWeightBytes(input: Exclude<WeightsInput, WeightsLoader | 'random'>, onProgress?: ProgressCallback): Promise<{ name: string; bytes: Uint8Array }> {
  if (input instanceof ArrayBuffer) return report('bytes', new Uint8Array(input), onProgress);
  if (ArrayBuffer.isView(input)) return report('bytes', new Uint8Array(input.buffer, input.byteOffset, input.byteLength), onProgress);
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    const name = typeof (input as { name?: unknown }).name === 'string' ? (input as File).name : 'blob';
    return { name, bytes: await drain(name, input.stream(), input.size, onProgress) };
  }
  const url = String(input);
  let res: Response;
  try { res = await fetch(url); } catch (e) { throw new WeightsInputError(`${url}: cannot fetch the weights: ${(e as Error).message}`); }
  if (!res.ok) throw new WeightsInputError(`${url}: fetching the weights answered HTTP ${res.status} ${res.statusText}`);
  const length = Number(res.headers.get('content-length'));
  const total = Number.isSafeInteger(length) && length > 0 ? length : undefined;
  if (!res.body) return report(url, new Uint8Array(await res.arrayBuffer()), onProgress);
  return { name: url, bytes: await drain(url, res.body, total, onProgress) };
}

function report(name: string, bytes: Uint8Array, onProgress?: ProgressCallback): { name: string; bytes: Uint8Array } {
  onProgress?.({ source: name, loadedBytes: bytes.length, totalBytes: bytes.length });
  return { name, bytes };
}

/** Reads a stream to one buffer (preallocated when the size is known), reporting each chunk. */
async function drain(name: string, stream: ReadableStream<Uint8Array>, total: number | undefined, onProgress?: ProgressCallback): Promise<Uint8Array> {
  const reader = stream.getReader();
  let buf = new Uint8Array(total ?? 1 << 20);
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (n + value.length > buf.length) {
      const grown = new Uint8Array(Math.max(buf.length * 2, n + value.length));
      grown.set(buf.subarray(0, n));
      buf = grown;
    }
    buf.set(value, n);
    n += value.length;
    onProgress?.({ source: name, loadedBytes: n, totalBytes: total });
  }
  if (total !== undefined && n !== total) throw new WeightsInputError(`${name}: expected ${total} bytes, got ${n} (the transfer was cut short)`);
  return n === buf.length ? buf : buf.subarray(0, n);
}
