// The WebGPU engine: runs a Program's dispatch list on a GPUDevice. Setup
// allocates every buffer once (per-token buffers hold maxTokensPerForward rows),
// uploads the weights, and compiles each kernel variant once. A forward writes
// the step uniform and the token/position inputs, encodes every step into one
// compute pass of one command encoder, and reads back only the logits rows asked for.
import type { WeightSource } from '../../compiler/ir/interpret.ts';
import type { Program } from '../../compiler/program.ts';
import { gridFor, pickVariant, type Backend, type Target } from '../../backends/backend.ts';
import type { Engine, EngineStats } from '../engine.ts';
import type { BatchStep } from '../kv/batchStep.ts';
import { packKvTable } from '../../compiler/ir/kvStorage.ts';
import { PagedEngine, type PoolOptions } from '../pagedEngine.ts';
import { uncapturedErrors } from './device.ts';
import { MoeReadback } from './moeReadback.ts';
import { DispatchProfiler, type StepProfile } from './profiler.ts';
import type { MoeStatsReport } from '../moeStats.ts';
import { allocateBuffers, compileKernels, MAP_READ, type CompiledKernel, type GpuBuffers } from './setup.ts';

export class WebGpuEngineError extends Error {}

function pickVariantIndex(k: CompiledKernel, T: number): number {
  const chosen = pickVariant(k.variants.map((v) => v.rendered), T);
  return k.variants.findIndex((v) => v.rendered === chosen);
}

export interface WebGpuEngineOptions extends PoolOptions {
  readonly device: GPUDevice;
  readonly program: Program;
  readonly backend: Backend;
  readonly weights: WeightSource;
  /** Most tokens one forward takes; default: the model's context, lowered to fit the binding limit. */
  readonly maxTokensPerForward?: number;
  /** Read each MoE layer's routing back after every forward, for moeStats() (default false). */
  readonly moeStats?: boolean;
  /** Time every dispatch with timestamp queries, for profile() (default false; one pass per dispatch). */
  readonly profile?: boolean;
  /** Kernel tuning (default: from the adapter, device.ts targetOf). */
  readonly target?: Target;
  /**
   * Bind the params this engine (same device) holds under the same name, type and size
   * instead of uploading them: a self-draft's layers are the target's. It must outlive this one.
   */
  readonly shareWeightsWith?: WebGpuEngine;
}

export class WebGpuEngine extends PagedEngine implements Engine {
  readonly backend = 'webgpu' as const;
  readonly maxTokensPerForward: number;
  private readonly device: GPUDevice;
  private readonly bufs: GpuBuffers;
  /** Per step: its kernel's variants and a bind group per variant, created on first use. */
  private readonly plan: { kernel: CompiledKernel; groups: (GPUBindGroup | undefined)[]; args: Readonly<Record<string, string>> }[];
  private forwards = 0;
  private tokens = 0;
  private lastForwardMs = 0;
  private readonly setupMs: number;
  private busy = false;
  private disposed = false;
  /** Pool buffers, copied page by page for copy-on-write: [name, bytes per page]. */
  private readonly pagedBuffers: [string, number][];
  private readonly moe: MoeReadback | null;
  private readonly profiler: DispatchProfiler | null;

  private constructor(o: WebGpuEngineOptions, bufs: GpuBuffers, kernels: Map<string, CompiledKernel>, maxTokens: number, setupMs: number) {
    super(o.program, { maxSequences: bufs.sizing.maxSeqs, kvPages: bufs.sizing.pages });
    this.device = o.device;
    this.bufs = bufs;
    this.pagedBuffers = o.program.buffers.filter((b) => (b.perPage ?? 0) > 0).map((b) => [b.name, b.perPage! * 4]);
    this.maxTokensPerForward = maxTokens;
    this.setupMs = setupMs;
    this.moe = o.moeStats ? MoeReadback.forProgram(o.device, o.program, maxTokens) : null;
    this.profiler = o.profile ? new DispatchProfiler(o.device, o.program.steps) : null;
    this.plan = o.program.steps.map((s) => {
      const kernel = kernels.get(s.kernel);
      if (!kernel) throw new WebGpuEngineError(`step ${s.label} uses kernel ${s.kernel}, which the program does not declare`);
      return { kernel, groups: kernel.variants.map(() => undefined), args: s.args };
    });
  }

  static async create(o: WebGpuEngineOptions): Promise<WebGpuEngine> {
    if (o.program.format !== 'infer-program/2') throw new WebGpuEngineError(`unsupported program format ${String(o.program.format)}`);
    const t0 = performance.now();
    const k = o.program.kv;
    const maxSeqs = o.maxSequences ?? k.maxSequences;
    if (o.shareWeightsWith && o.shareWeightsWith.device !== o.device) throw new WebGpuEngineError('shareWeightsWith: an engine on another device');
    const bufs = allocateBuffers(o.device, o.program, o.weights, {
      maxTokens: o.maxTokensPerForward, maxSeqs, pages: o.kvPages ?? maxSeqs * k.pagesPerSequence,
    }, o.shareWeightsWith?.bufs);
    try {
      const kernels = await compileKernels(o.device, o.program, o.backend, o.target);
      return new WebGpuEngine(o, bufs, kernels, bufs.maxTokens, performance.now() - t0);
    } catch (e) {
      bufs.destroy();
      throw e;
    }
  }

  protected async execute(step: BatchStep, rowFrom: number, rowTo: number): Promise<Float32Array> {
    if (this.disposed) throw new WebGpuEngineError('this engine was disposed');
    if (this.busy) throw new WebGpuEngineError('forward called while another forward is running; await each one');
    const T = step.tokens.length, m = this.model;
    this.busy = true;
    const t0 = performance.now();
    try {
      const q = this.device.queue;
      const tb = step.tables;
      const write = (name: string, data: Int32Array) => { if (data.length && this.bufs.has(name)) q.writeBuffer(this.bufs.get(name), 0, data as Int32Array<ArrayBuffer>); };
      write('tokens', step.tokens);
      write('positions', step.positions);
      write('kv_slot', tb.slots);
      write('kv_seq', tb.seqOf);
      write('kv_table', packKvTable(tb));
      q.writeBuffer(this.bufs.uniform, 0, Uint32Array.of(T, 0, 0, 0));

      // Resolve every dispatch first, so nothing throws between push and pop of the error scope.
      const dispatches = this.plan.map((step) => {
        const vi = pickVariantIndex(step.kernel, T);
        const v = step.kernel.variants[vi];
        const grid = gridFor(v.rendered.grid, T);
        if (grid.some((g) => g < 1 || g > this.bufs.maxGroupsPerDim)) {
          throw new WebGpuEngineError(`kernel ${v.rendered.key} needs a grid of ${grid.join('x')} for ${T} tokens; the device allows 1..${this.bufs.maxGroupsPerDim} groups per dimension`);
        }
        const group = step.groups[vi] ??= this.bindGroup(v, step.args);
        return { pipeline: v.pipeline, group, grid };
      });
      this.device.pushErrorScope('validation');
      const enc = this.device.createCommandEncoder({ label: 'forward' });
      // Copy-on-write of shared pages the step writes into: whole pages, every layer.
      for (const c of step.copies) {
        for (const [name, bytes] of this.pagedBuffers) {
          // WebGPU forbids a copy within one buffer: go through a scratch page.
          const b = this.bufs.get(name);
          enc.copyBufferToBuffer(b, c.from * bytes, this.bufs.pageScratch, 0, bytes);
          enc.copyBufferToBuffer(this.bufs.pageScratch, 0, b, c.to * bytes, bytes);
        }
      }
      // One compute pass for the whole forward; when profiling, one timestamped pass per dispatch.
      const profiler = this.profiler;
      const shared = profiler ? null : enc.beginComputePass();
      dispatches.forEach((d, i) => {
        const pass = shared ?? profiler!.pass(enc, i);
        pass.setPipeline(d.pipeline);
        pass.setBindGroup(0, d.group);
        pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
        if (!shared) pass.end();
      });
      shared?.end();
      profiler?.finish(enc);
      const V = m.vocab;
      const bytes = (rowTo - rowFrom) * V * 4;
      enc.copyBufferToBuffer(this.bufs.get(this.program.logits), rowFrom * V * 4, this.bufs.staging, 0, bytes);
      this.moe?.encode(enc, T, (name) => this.bufs.get(name));
      q.submit([enc.finish()]);
      const err = await this.device.popErrorScope();
      if (err) throw new WebGpuEngineError(`WebGPU rejected the forward pass: ${err.message}`);

      await this.bufs.staging.mapAsync(MAP_READ, 0, bytes);
      const out = new Float32Array(this.bufs.staging.getMappedRange(0, bytes).slice(0));
      this.bufs.staging.unmap();
      await this.moe?.collect(T);
      await this.profiler?.collect();
      // Errors outside any scope (device loss, out-of-memory) surface here, not as silent zeros.
      const late = uncapturedErrors(this.device);
      if (late.length) throw new WebGpuEngineError(`WebGPU reported during the forward pass: ${late.join('; ')}`);
      this.forwards++;
      this.tokens += T;
      return out;
    } finally {
      this.lastForwardMs = performance.now() - t0;
      this.busy = false;
    }
  }

  private bindGroup(v: CompiledKernel['variants'][number], args: Readonly<Record<string, string>>): GPUBindGroup {
    const entries = v.rendered.bindings.map((b, i) => {
      if (b.access === 'uniform') return { binding: i, resource: { buffer: this.bufs.uniform } };
      const name = args[b.name];
      if (!name) throw new WebGpuEngineError(`kernel ${v.rendered.key} binds '${b.name}', but its step gives no buffer for it`);
      return { binding: i, resource: { buffer: this.bufs.get(name) } };
    });
    return this.device.createBindGroup({ layout: v.layout, entries, label: v.rendered.key });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.moe?.destroy();
    this.profiler?.destroy();
    this.bufs.destroy();
  }

  /** GPU time per Program step over the forwards since creation or the last reset, when created with profile: true. */
  profile(reset = false): StepProfile[] | null {
    const r = this.profiler?.report() ?? null;
    if (reset) this.profiler?.reset();
    return r;
  }

  /** Tokens per expert of every MoE layer, when created with moeStats: true. */
  moeStats(): MoeStatsReport | null { return this.moe?.stats.report() ?? null; }

  stats(): EngineStats {
    const d = this.plan.length;
    return {
      backend: this.backend, forwards: this.forwards, tokens: this.tokens, dispatches: this.forwards * d,
      dispatchesPerForward: d, lastForwardMs: this.lastForwardMs, setupMs: this.setupMs, bytesAllocated: this.bufs.bytes,
    };
  }
}
