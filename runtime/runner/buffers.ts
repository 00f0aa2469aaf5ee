// A Program's buffers on a Device: sized from the Program for the chosen tokens per
// forward, pool pages and batch size (with every size checked against the device's limits
// before anything is allocated, so an oversized model fails with a clear message rather
// than a device error mid-forward), params filled from the weights, everything else zeroed.
// Activations that share an arena (Program.arenas, compiler/planMemory.ts) are one device
// buffer bound under each member's name, so steps keep binding by name.
import { bufferBytes, type BufferDecl, type Program, type Sizing } from '../../program/program.ts';
import { STEP_UNIFORM_BYTES } from '../../program/stepUniform.ts';
import type { WeightSource } from '../../program/weights.ts';
import { DeviceError, type Device, type DeviceBuffer } from './device.ts';
import { ParamUploader } from './paramUpload.ts';

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
  const limit = deviceCap(device);
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

/** The most bytes one buffer may have on `device`: what one binding sees and one allocation holds. */
const deviceCap = (device: Device): number => Math.min(device.limits.maxBindingBytes, device.limits.maxBufferBytes);

/**
 * Every size, before anything is allocated: each buffer against the device's binding and
 * buffer limits, and (when the device's memory is known) the total against it, so a model
 * that cannot fit is refused with its numbers rather than failing mid-upload or losing the device.
 */
export function checkFit(device: Device, program: Program, sizing: Sizing, shared?: SharedParams, memoryBytes?: number): void {
  const limit = deviceCap(device);
  const arenas = new Map(program.arenas.map((a) => [a.name, a]));
  for (const d of program.buffers) {
    const arena = d.storage === undefined ? undefined : arenas.get(d.storage);
    if (d.storage !== undefined && (!arena || arena.perToken < d.perToken)) {
      throw new BufferSetupError(`buffer ${d.name} is stored in ${d.storage}, which the program ${arena ? `sizes for ${arena.perToken} values per token, under its ${d.perToken}` : 'does not declare'}`);
    }
  }
  const what = device.limits.maxBindingBytes <= device.limits.maxBufferBytes ? 'storage binding limit' : 'buffer size limit';
  const owned = [...program.arenas, ...program.buffers].filter((d) => d.storage === undefined && !(d.kind === 'param' && shared?.param(d)));
  let total = STEP_UNIFORM_BYTES, largest = { name: '', bytes: 0 };
  const byKind = new Map<string, number>();
  for (const d of owned) {
    const size = bufferBytes(d, sizing);
    total += size;
    byKind.set(d.kind, (byKind.get(d.kind) ?? 0) + size);
    if (size > largest.bytes) largest = { name: d.name, bytes: size };
    if (size <= limit) continue;
    const why = d.kind === 'param' ? ` (the program splits params over ${mib(Math.min(program.limits.maxBindingBytes, program.limits.maxBufferBytes))}; compile it for this device's limits)`
      : d.perToken > 0 ? ` (${sizing.maxTokens} tokens x ${d.perToken} values); use fewer tokens per forward`
        : d.perPage ? ` (${sizing.pages} KV pages x ${d.perPage * 4} bytes); use fewer KV pages or a shorter context` : '';
    throw new BufferSetupError(`buffer ${d.name} needs ${mib(size)}${why}, over this device's ${what} of ${mib(limit)}`);
  }
  if (memoryBytes !== undefined && total > memoryBytes) {
    const parts = ['param', 'kv', 'activation', 'logits', 'input'].filter((k) => byKind.has(k))
      .map((k) => `${{ param: 'weights', kv: 'KV cache', activation: 'activations', logits: 'logits', input: 'inputs' }[k]} ${mib(byKind.get(k)!)}`);
    throw new BufferSetupError(`the model needs ${mib(total)} of device memory (${parts.join(', ')}; largest buffer ${largest.name}, ${mib(largest.bytes)}), `
      + `over the ${mib(memoryBytes)} available on ${device.description}; use a smaller KV pool (fewer sequences or pages), fewer tokens per forward, or a more compact weight type`);
  }
}

/** Allocates every Program buffer for `sizing`; params are uploaded from `weights`, one tensor at a time. */
export async function allocateProgramBuffers(device: Device, program: Program, weights: WeightSource, sizing: Sizing, shared?: SharedParams, memoryBytes?: number): Promise<ProgramBuffers> {
  checkFit(device, program, sizing, shared, memoryBytes);
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
    // Params stream from the weights (runtime/runner/paramUpload.ts): never a whole model, at most one tensor, on the host.
    const params = new ParamUploader(device, weights);
    for (const d of program.buffers) {
      if (d.storage !== undefined) { byName.set(d.name, arenaBufs.get(d.storage)!); continue; }
      // A param another runner already holds (same name, type and size): bound, not copied.
      const other = d.kind === 'param' ? shared?.param(d) : undefined;
      if (other) { byName.set(d.name, other); continue; }
      const buf = make(d.name, bufferBytes(d, sizing), 'storage');
      byName.set(d.name, buf);
      if (d.kind === 'activation') activationBytes += buf.bytes;
      if (d.kind === 'param') await params.upload(buf, d);
    }
    params.finish();
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
