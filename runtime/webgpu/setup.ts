// One-off setup of the WebGPU engine: buffers sized from the Program (with the
// binding-size limit checked up front, so an oversized model fails with a clear
// message rather than a validation error mid-forward), weights uploaded, and each
// kernel variant compiled once with an explicit bind group layout (device.ts).
import type { WeightSource } from '../../compiler/ir/interpret.ts';
import { bufferBytes, type BufferDecl, type KernelSpec, type Program, type Sizing } from '../../compiler/program.ts';
import { packBlocks } from '../weights/quantBlocks.ts';
import type { Backend, RenderedKernel, Target } from '../../backends/backend.ts';
import { compileKernel, targetOf } from './device.ts';

// The WebGPU flag values, spelled out so this file does not need the GPU* globals installed.
export const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
export const MAP_READ = 0x1;

export class GpuSetupError extends Error {}

/**
 * Params another engine on the same device holds: a layer-skipping self-draft binds the
 * target's weights instead of uploading them again. The owner must outlive the borrower.
 */
export interface SharedParams { param(d: BufferDecl): GPUBuffer | undefined }

export interface GpuBuffers extends SharedParams {
  get(name: string): GPUBuffer;
  /** Whether the program declares the buffer (one without attention has no positions or KV tables). */
  has(name: string): boolean;
  readonly uniform: GPUBuffer;
  /** Host-readable copy target for the logits rows. */
  readonly staging: GPUBuffer;
  /** One page of the largest pool buffer: copy-on-write goes through it. */
  readonly pageScratch: GPUBuffer;
  readonly sizing: Sizing;
  readonly maxTokens: number;
  readonly maxGroupsPerDim: number;
  readonly bytes: number;
  destroy(): void;
}

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/**
 * Allocates every Program buffer for the given tokens per forward, pool pages and batch
 * size; params are filled from `weights`, everything else starts zeroed.
 */
export function allocateBuffers(device: GPUDevice, program: Program, weights: WeightSource,
  want: { maxTokens?: number; pages: number; maxSeqs: number }, shared?: SharedParams): GpuBuffers {
  const maxTokensWanted = want.maxTokens;
  const limit = device.limits.maxStorageBufferBindingSize;
  const m = program.model;
  // Per-token buffers scale with the tokens per forward; fit them under the binding limit.
  const widest = Math.max(1, ...program.buffers.filter((b) => b.perToken > 0).map((b) => b.perToken * 4));
  const fit = Math.floor(limit / widest);
  if (fit < 1 && maxTokensWanted === undefined) {
    // Not even one token's row fits: say which buffer, rather than "0 tokens per forward".
    const d = program.buffers.find((b) => b.perToken * 4 === widest)!;
    throw new GpuSetupError(`buffer ${d.name} needs ${mib(widest)} for a single token (${d.perToken} values), over this device's storage binding limit of ${mib(limit)}; this model is too wide for this device`);
  }
  const maxTokens = maxTokensWanted ?? Math.min(m.maxContext, fit);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new GpuSetupError(`tokens per forward must be an integer >= 1, got ${maxTokens}`);
  if (!Number.isInteger(want.pages) || want.pages < 1) throw new GpuSetupError(`the KV pool needs an integer >= 1 of pages, got ${want.pages}`);
  if (!Number.isInteger(want.maxSeqs) || want.maxSeqs < 1) throw new GpuSetupError(`max sequences must be an integer >= 1, got ${want.maxSeqs}`);
  const sizing: Sizing = { maxTokens, pages: want.pages, maxSeqs: want.maxSeqs };
  const created: GPUBuffer[] = [];
  const byName = new Map<string, GPUBuffer>();
  let bytes = 0;
  const make = (label: string, size: number, usage: number): GPUBuffer => {
    const b = device.createBuffer({ label, size: Math.max(16, Math.ceil(size / 16) * 16), usage });
    created.push(b);
    bytes += b.size;
    return b;
  };
  const destroy = () => { for (const b of created) b.destroy(); };
  try {
    for (const d of program.buffers) {
      const size = bufferBytes(d, sizing);
      if (size > limit) {
        const why = d.perToken > 0 ? ` (${maxTokens} tokens x ${d.perToken} values); use fewer tokens per forward`
          : d.perPage ? ` (${sizing.pages} KV pages x ${d.perPage * 4} bytes); use fewer KV pages` : '';
        throw new GpuSetupError(`buffer ${d.name} needs ${mib(size)}${why}, over this device's storage binding limit of ${mib(limit)}; a tensor this large must be split across bindings, which this version does not do`);
      }
      // A param another engine already holds (same name, type and size): bound, not copied.
      const other = d.kind === 'param' ? shared?.param(d) : undefined;
      if (other) { byName.set(d.name, other); continue; }
      const usage = USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC;
      const buf = make(d.name, size, usage);
      byName.set(d.name, buf);
      if (d.kind === 'param' && (d.dtype === 'q8_0' || d.dtype === 'q4_0')) {
        device.queue.writeBuffer(buf, 0, quantParam(d, weights) as Uint32Array<ArrayBuffer>);
      } else if (d.kind === 'param') {
        const name = d.name.replace(/^param:/, '');
        const data = weights.get(name);
        if (data.length !== d.elements) throw new GpuSetupError(`weight ${name} has ${data.length} values; the program expects ${d.elements}`);
        // The WebGPU typings want an ArrayBuffer-backed view; Dawn copies either kind.
        device.queue.writeBuffer(buf, 0, data as Float32Array<ArrayBuffer>);
      }
    }
    // Only the logits are always there: a model without attention has no positions or
    // KV tables, one that ignores its tokens no token buffer; the forward skips what is absent.
    for (const need of [program.logits]) {
      if (!byName.has(need)) throw new GpuSetupError(`the program has no '${need}' buffer`);
    }
    const uniform = make('step-uniform', 16, USAGE.UNIFORM | USAGE.COPY_DST);
    const staging = make('logits-readback', maxTokens * m.vocab * 4, USAGE.MAP_READ | USAGE.COPY_DST);
    const pageScratch = make('kv-page-scratch', 4 * Math.max(1, ...program.buffers.map((b) => b.perPage ?? 0)), USAGE.COPY_SRC | USAGE.COPY_DST);
    return {
      get(name: string): GPUBuffer {
        const b = byName.get(name);
        if (!b) throw new GpuSetupError(`the program refers to an undeclared buffer ${name}`);
        return b;
      },
      has: (name: string) => byName.has(name),
      param(d: BufferDecl): GPUBuffer | undefined {
        const mine = program.buffers.find((b) => b.kind === 'param' && b.name === d.name);
        return mine && mine.dtype === d.dtype && mine.elements === d.elements ? byName.get(d.name) : undefined;
      },
      uniform, staging, pageScratch, sizing, maxTokens, bytes, destroy,
      maxGroupsPerDim: device.limits.maxComputeWorkgroupsPerDimension,
    };
  } catch (e) {
    destroy();
    throw e;
  }
}

/** A quantised param's blocks in the device layout; the source must hold them in exactly that type. */
function quantParam(d: BufferDecl, weights: WeightSource): Uint32Array {
  const name = d.name.replace(/^param:/, '');
  const type = d.dtype as 'q8_0' | 'q4_0';
  if (!weights.getRaw) throw new GpuSetupError(`the program keeps weight ${name} as ${type} blocks, but this weight source has no raw tensors (compile without weight types to run it as f32)`);
  const raw = weights.getRaw(name);
  if (raw.type !== type) throw new GpuSetupError(`the program keeps weight ${name} as ${type} blocks, but the weight file stores it as ${raw.type} (compile with this file's tensor types)`);
  return packBlocks(type, raw.bytes, d.elements);
}

export interface CompiledVariant { readonly rendered: RenderedKernel; readonly pipeline: GPUComputePipeline; readonly layout: GPUBindGroupLayout }
export interface CompiledKernel { readonly key: string; readonly spec: KernelSpec; readonly variants: readonly CompiledVariant[] }

/**
 * Renders every kernel of the program and compiles each variant once. Pipelines come
 * from device.ts's per-device cache (keyed by source), so engines built one after
 * another on one device (tests, benchmarks, fused vs unfused) compile nothing twice.
 */
export async function compileKernels(device: GPUDevice, program: Program, backend: Backend, target?: Target): Promise<Map<string, CompiledKernel>> {
  target ??= targetOf(device);
  const out = new Map<string, CompiledKernel>();
  for (const { key, spec } of program.kernels) {
    const rendered = backend.render(key, spec, target);
    if (rendered.length === 0) throw new GpuSetupError(`backend ${backend.name} rendered no variant of kernel ${key}`);
    const variants: CompiledVariant[] = [];
    for (const r of rendered) {
      device.pushErrorScope('validation');
      const pipeline = await compileKernel(device, r).catch(async (e: unknown) => {
        await device.popErrorScope();
        throw new GpuSetupError(`kernel ${r.key} (variant for >= ${r.minTokens} tokens): ${e instanceof Error ? e.message : String(e)}`);
      });
      const err = await device.popErrorScope();
      if (err) throw new GpuSetupError(`kernel ${r.key} (variant for >= ${r.minTokens} tokens) was rejected: ${err.message}`);
      // The layout is the explicit one compileKernel built from r.bindings.
      variants.push({ rendered: r, pipeline, layout: pipeline.getBindGroupLayout(0) });
    }
    out.set(key, { key, spec, variants });
  }
  return out;
}
