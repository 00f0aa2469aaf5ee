// A Program's buffers on a Device: sized from the Program for the chosen tokens per
// forward, pool pages and batch size (with every size checked against the device's limits
// before anything is allocated, so an oversized model fails with a clear message rather
// than a device error mid-forward), params filled from the weights, everything else zeroed.
// Activations that share an arena (Program.arenas, compiler/planMemory.ts) are one device
// buffer bound under each member's name, so steps keep binding by name.
import { bufferBytes, type BufferDecl, type Program, type Sizing } from '../../program/program.ts';
import { isCompactType, packBlocks, packHalves, type CompactType } from '../../program/quant.ts';
import { fromBf16, toHalf } from '../weights/ggufQuant.ts';
import { STEP_UNIFORM_BYTES } from '../../program/stepUniform.ts';
import type { WeightSource } from '../../program/weights.ts';
import { DeviceError, type Device, type DeviceBuffer } from './device.ts';

export class BufferSetupError extends DeviceError {}

/**
 * Params another runner on the same device holds: a layer-skipping self-draft binds the
 * target's weights instead of uploading them again. The owner must outlive the borrower.
 */
export interface SharedParams { param(d: BufferDecl): DeviceBuffer | undefined }

export interface ProgramBuffers extends SharedParams {
  get(name: string): DeviceBuffer;
  has(name: string): boolean;
  readonly uniform: DeviceBuffer;
  readonly sizing: Sizing;
  readonly bytes: number;
  /** Of `bytes`: the activations (arenas and unshared activation buffers). */
  readonly activationBytes: number;
  destroy(): void;
}

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

export interface SizingWanted { readonly maxTokens?: number; readonly pages: number; readonly maxSeqs: number }

/** Tokens per forward, pages and sequences, each checked; tokens default to what fits the binding limit. */
export function chooseSizing(program: Program, device: Device, want: SizingWanted): Sizing {
  const limit = device.limits.maxBindingBytes;
  // Per-token buffers scale with the tokens per forward; fit them under the binding limit.
  const widest = Math.max(1, ...program.buffers.filter((b) => b.perToken > 0).map((b) => b.perToken * 4));
  const fit = Math.floor(limit / widest);
  const maxTokens = want.maxTokens ?? Math.min(program.model.maxContext, fit);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new BufferSetupError(fit < 1
      ? `one token's activations need ${mib(widest)} in a single buffer, over this device's storage binding limit of ${mib(limit)}`
      : `tokens per forward must be an integer >= 1, got ${maxTokens}`);
  }
  if (!Number.isInteger(want.pages) || want.pages < 1) throw new BufferSetupError(`the KV pool needs an integer >= 1 of pages, got ${want.pages}`);
  if (!Number.isInteger(want.maxSeqs) || want.maxSeqs < 1) throw new BufferSetupError(`max sequences must be an integer >= 1, got ${want.maxSeqs}`);
  return { maxTokens, pages: want.pages, maxSeqs: want.maxSeqs };
}

/** Allocates every Program buffer for `sizing`; params are uploaded from `weights`. */
export function allocateProgramBuffers(device: Device, program: Program, weights: WeightSource, sizing: Sizing, shared?: SharedParams): ProgramBuffers {
  const limit = device.limits.maxBindingBytes;
  // Every size first: nothing is allocated for a program that cannot fit.
  const arenas = new Map(program.arenas.map((a) => [a.name, a]));
  for (const d of program.buffers) {
    const arena = d.storage === undefined ? undefined : arenas.get(d.storage);
    if (d.storage !== undefined && (!arena || arena.perToken < d.perToken)) {
      throw new BufferSetupError(`buffer ${d.name} is stored in ${d.storage}, which the program ${arena ? `sizes for ${arena.perToken} values per token, under its ${d.perToken}` : 'does not declare'}`);
    }
  }
  for (const d of [...program.arenas, ...program.buffers]) {
    const size = bufferBytes(d, sizing);
    if (size > limit) {
      const why = d.perToken > 0 ? ` (${sizing.maxTokens} tokens x ${d.perToken} values); use fewer tokens per forward`
        : d.perPage ? ` (${sizing.pages} KV pages x ${d.perPage * 4} bytes); use fewer KV pages` : '';
      throw new BufferSetupError(`buffer ${d.name} needs ${mib(size)}${why}, over this device's storage binding limit of ${mib(limit)}; a tensor this large must be split across bindings, which this version does not do`);
    }
  }
  const created: DeviceBuffer[] = [];
  const byName = new Map<string, DeviceBuffer>();
  let bytes = 0, activationBytes = 0;
  const make = (label: string, size: number, use: 'storage' | 'uniform'): DeviceBuffer => {
    const b = device.allocate(label, size, use);
    created.push(b);
    bytes += b.bytes;
    return b;
  };
  const arenaBufs = new Map<string, DeviceBuffer>();
  const destroy = () => { for (const b of created) device.free(b); };
  try {
    for (const a of program.arenas) {
      const buf = make(a.name, bufferBytes(a, sizing), 'storage');
      arenaBufs.set(a.name, buf);
      activationBytes += buf.bytes;
    }
    for (const d of program.buffers) {
      if (d.storage !== undefined) { byName.set(d.name, arenaBufs.get(d.storage)!); continue; }
      // A param another runner already holds (same name, type and size): bound, not copied.
      const other = d.kind === 'param' ? shared?.param(d) : undefined;
      if (other) { byName.set(d.name, other); continue; }
      const buf = make(d.name, bufferBytes(d, sizing), 'storage');
      byName.set(d.name, buf);
      if (d.kind === 'activation') activationBytes += buf.bytes;
      if (d.kind === 'param') device.upload(buf, 0, paramData(d, weights));
    }
    if (!byName.has(program.logits)) throw new BufferSetupError(`the program has no '${program.logits}' buffer for its logits`);
    const uniform = make('step-uniform', STEP_UNIFORM_BYTES, 'uniform');
    return {
      get(name: string): DeviceBuffer {
        const b = byName.get(name);
        if (!b) throw new BufferSetupError(`the program refers to an undeclared buffer ${name}`);
        return b;
      },
      has: (name) => byName.has(name),
      param(d: BufferDecl): DeviceBuffer | undefined {
        const mine = program.buffers.find((b) => b.kind === 'param' && b.name === d.name);
        return mine && mine.dtype === d.dtype && mine.elements === d.elements ? byName.get(d.name) : undefined;
      },
      uniform, sizing, bytes, activationBytes, destroy,
    };
  } catch (e) {
    destroy();
    throw e;
  }
}

/** A param's device bytes: its f32 values, or its f16 halves / blocks in the device layout (program/quant.ts). */
function paramData(d: BufferDecl, weights: WeightSource): Float32Array | Uint32Array {
  const name = d.name.replace(/^param:/, '');
  if (isCompactType(d.dtype)) return quantParam(name, d.dtype, d.elements, weights);
  const data = weights.get(name);
  if (data.length !== d.elements) throw new BufferSetupError(`weight ${name} has ${data.length} values; the program expects ${d.elements}`);
  return data;
}

function quantParam(name: string, type: CompactType, elements: number, weights: WeightSource): Uint32Array {
  if (!weights.getRaw) throw new BufferSetupError(`the program keeps weight ${name} as ${type}, but this weight source has no raw tensors (compile without weight types to run it as f32)`);
  const raw = weights.getRaw(name);
  if (type === 'f16' && raw.type === 'bf16') return packHalves(bf16ToF16(name, raw.bytes), elements);
  if (raw.type !== type) throw new BufferSetupError(`the program keeps weight ${name} as ${type}, but the weight file stores it as ${raw.type} (compile with this file's tensor types)`);
  return type === 'f16' ? packHalves(raw.bytes, elements) : packBlocks(type, raw.bytes, elements);
}

/** bf16 -> f16 halves (program/quant.ts deviceWeightType says why); a value beyond f16's range is refused, never made infinite. */
function bf16ToF16(name: string, bytes: Uint8Array): Uint8Array {
  const n = bytes.length / 2, out = new Uint8Array(bytes.length);
  const src = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), dst = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = fromBf16(src.getUint16(2 * i, true)), h = toHalf(v);
    if ((h & 0x7c00) === 0x7c00 && Number.isFinite(v)) {
      throw new BufferSetupError(`weight ${name}: value ${v} (element ${i}) is beyond f16's range, so this bf16 tensor cannot be kept as f16 on the device (run with --f32-weights)`);
    }
    dst.setUint16(2 * i, h, true);
  }
  return out;
}
