// Memory traffic of the work a runner actually submits, counted from the dispatches
// themselves: each dispatch's bound buffers and the ranges of them it touches, with the
// ranges taken from what the runner uploaded for that forward (token count, block tables).
// This is the check on compiler/cost.ts and `infer plan`: the cost model derives bytes from
// kernel specs; this counts them from bindings, buffer declarations and inputs, so an extra
// dispatch, a wrong buffer or a wrong span shows as a difference.
//
// TrafficDevice wraps any Device (the real WebGPU one, or a null device in tests) and
// remembers allocations, uploads and the last submission; countTraffic turns the last
// submission into bytes read and written per dispatch.
import { bindingNames, writtenBindings } from '../../program/kernels.ts';
import { bufferBytes, type BufferDecl, type Program } from '../../program/program.ts';
import type { Device, DeviceBinding, DeviceBuffer, DeviceKernel, Submission, SubmissionResult } from './device.ts';

export class TrafficDevice implements Device {
  readonly name; readonly description; readonly limits; readonly target; readonly canTime;
  /** Bytes of every live allocation, by label. */
  readonly allocated = new Map<DeviceBuffer, number>();
  /** The last data uploaded to each buffer label (the runner's per-forward inputs). */
  readonly lastUpload = new Map<string, ArrayBufferView>();
  lastSubmission: Submission | null = null;

  constructor(private readonly inner: Device) {
    this.name = inner.name; this.description = inner.description; this.limits = inner.limits; this.target = inner.target; this.canTime = inner.canTime;
  }

  allocate(label: string, bytes: number, use: 'storage' | 'uniform'): DeviceBuffer {
    const b = this.inner.allocate(label, bytes, use);
    this.allocated.set(b, b.bytes);
    return b;
  }
  upload(buffer: DeviceBuffer, offset: number, data: ArrayBufferView): void {
    if (offset === 0) this.lastUpload.set(buffer.label, data);
    this.inner.upload(buffer, offset, data);
  }
  compile(kernel: Parameters<Device['compile']>[0]): Promise<DeviceKernel> { return this.inner.compile(kernel); }
  bind(kernel: DeviceKernel, buffers: readonly DeviceBuffer[]): DeviceBinding { return this.inner.bind(kernel, buffers); }
  submit(work: Submission): Promise<SubmissionResult> { this.lastSubmission = work; return this.inner.submit(work); }
  free(buffer: DeviceBuffer): void { this.allocated.delete(buffer); this.inner.free(buffer); }

  /** Bytes of every allocation still held. */
  get bytesAllocated(): number { let n = 0; for (const v of this.allocated.values()) n += v; return n; }
}

/** A weight's device bytes (its declared size: params do not scale with the sizing). */
const paramBytes = (d: BufferDecl): number => bufferBytes(d, { maxTokens: 0, pages: 0, maxSeqs: 0 });

export interface DispatchTraffic { readonly label: string; readonly bytesRead: number; readonly bytesWritten: number }

/**
 * Bytes each dispatch of the last submission reads and writes. Per binding: a weight is
 * read whole, except the embedding table (one row per token); a per-token buffer for the
 * step's T rows; the block table for what was uploaded; a KV pool for the keys each
 * sequence of the step can see (its length, or its window plus its new tokens), at the
 * pool's bytes per slot (per query head for the unfused kernels). The step uniform is not counted.
 */
export function countTraffic(p: Program, device: TrafficDevice): DispatchTraffic[] {
  const work = device.lastSubmission;
  if (!work) throw new Error('nothing was submitted');
  // The program's steps, and at most one more: the greedy argmax (not a step; not counted here).
  if (work.dispatches.length !== p.steps.length && work.dispatches.length !== p.steps.length + 1) throw new Error(`the submission has ${work.dispatches.length} dispatches; the program has ${p.steps.length} steps`);
  const decl = new Map(p.buffers.map((d) => [d.name, d]));
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  const tokens = device.lastUpload.get('tokens');
  if (!tokens) throw new Error('no tokens were uploaded');
  const T = tokens.byteLength / 4;
  const table = device.lastUpload.get('kv_table') as Int32Array | undefined;
  const seqOf = device.lastUpload.get('kv_seq') as Int32Array | undefined;
  // Keys each sequence's attention reads: its length, or the window's reach.
  const keysRead = (): number => {
    if (!table || !seqOf) throw new Error('an attention step without uploaded block tables');
    const B = table[0], ps = p.kv.pageSize, w = p.kv.window;
    let keys = 0;
    for (let b = 0; b < B; b++) {
      const pages = table[1 + b + 1] - table[1 + b], len = (pages - 1) * ps + table[B + 2 + b];
      const newTokens = seqOf.filter((s) => s === b).length;
      keys += w === null ? len : Math.min(len, w + newTokens - 1);
    }
    return keys;
  };
  const perToken = (d: BufferDecl) => d.perToken * T * 4;
  return p.steps.map((s) => {
    const spec = specs.get(s.kernel)!;
    const written = new Set(writtenBindings(spec));
    let bytesRead = 0, bytesWritten = 0;
    for (const b of bindingNames(spec)) {
      const d = decl.get(s.args[b]);
      if (!d) throw new Error(`step ${s.label} binds ${b} to undeclared ${s.args[b]}`);
      const slotBytes = d.kind === 'kv' ? ((d.perPage ?? 0) * 4) / p.kv.pageSize : 0;
      if (written.has(b)) { bytesWritten += d.kind === 'kv' ? T * slotBytes : perToken(d); continue; }
      if (d.kind === 'param') bytesRead += b === 'table' && spec.kind === 'embed' ? (T * paramBytes(d)) / spec.vocab : paramBytes(d);
      // The unfused attention kernels run a workgroup per query head, each reading its KV
      // head's rows itself; the fused kernel reads a group's rows once for all its heads.
      else if (d.kind === 'kv') bytesRead += keysRead() * slotBytes * (spec.kind === 'attn_scores' || spec.kind === 'attn_values' ? spec.heads / spec.kvHeads : 1);
      else if (d.name === 'kv_table') bytesRead += table!.byteLength;
      else bytesRead += d.perToken > 0 ? perToken(d) : d.elements * 4;
    }
    return { label: s.label, bytesRead, bytesWritten };
  });
}
