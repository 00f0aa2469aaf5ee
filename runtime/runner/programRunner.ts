// The ProgramRunner: runs a Program's dispatch list on any Device. Setup allocates every
// buffer once (per-token buffers and activation arenas hold maxTokensPerForward rows), uploads the weights and
// compiles each kernel variant once. A forward writes the step uniform and the token,
// position and block-table inputs, picks each step's variant and grid for T tokens, binds
// buffers by name (cached per step and variant), and submits the page copies, the
// dispatches and the logits readback as one unit of work.
import type { Backend, Target } from '../../backends/backend.ts';
import { packKvTable } from '../../program/kv.ts';
import { GREEDY_BUFFERS, PROGRAM_FORMAT, type Program } from '../../program/program.ts';
import { packStepUniform, stepPart, STEP_UNIFORM_BYTES } from '../../program/stepUniform.ts';
import type { WeightSource } from '../../program/weights.ts';
import type { Engine, EngineStats } from '../engine.ts';
import type { BatchStep } from '../kv/batchStep.ts';
import type { MoeStatsReport } from '../moeStats.ts';
import { PagedEngine, type PoolOptions } from '../pagedEngine.ts';
import { allocateProgramBuffers, chooseSizing, type ProgramBuffers } from './buffers.ts';
import { DeviceError, type Device, type DeviceBinding, type DeviceBuffer, type DeviceCopy, type DeviceDispatch } from './device.ts';
import { checkedGrid, chooseVariant, compileArgmax, compileProgramKernels, type CompiledKernel } from './kernels.ts';
import type { BatchItem } from '../kv/batchStep.ts';
import { MoeRouting } from './moeRouting.ts';

export class RunnerError extends DeviceError {}

/** Accumulated device time and calls per step of the Program's dispatch list. */
export interface StepProfile { readonly label: string; readonly kernel: string; readonly ns: number; readonly calls: number }

export interface RunnerOptions extends PoolOptions {
  readonly device: Device;
  readonly program: Program;
  readonly backend: Backend;
  readonly weights: WeightSource;
  /** Most tokens one forward takes; default: the model's context, lowered to fit the binding limit. */
  readonly maxTokensPerForward?: number;
  /** Read each MoE layer's routing back after every forward, for moeStats() (default false). */
  readonly moeStats?: boolean;
  /** Time every dispatch, for profile() (default false; the device must be able to time). */
  readonly profile?: boolean;
  /** Kernel tuning (default: the device's). */
  readonly target?: Target;
  /** Bind the params this runner (same device) holds under the same name, type and size instead of uploading them. */
  readonly shareWeightsWith?: ProgramRunner;
  /**
   * Device memory this runner may allocate, when known (a software adapter's is the host's
   * free memory): a program needing more is refused before anything is allocated.
   */
  readonly deviceMemoryBytes?: number;
}

/** Inputs the runtime writes before each forward, when the program declares them. */
const INPUTS = ['tokens', 'positions', 'kv_slot', 'kv_seq', 'kv_table'] as const;

export class ProgramRunner extends PagedEngine implements Engine {
  readonly backend: Device['name'];
  readonly maxTokensPerForward: number;
  /** Per step: its kernel's variants and their bindings, created on first use. */
  private readonly plan: { kernel: CompiledKernel; bindings: (DeviceBinding | undefined)[]; args: Readonly<Record<string, string>>; uniform: DeviceBuffer }[];
  /**
   * A step uniform per split-param part offset (program/stepUniform.ts `part`): the parts'
   * dispatches share a kernel and tell it their columns through the uniform they bind.
   */
  private readonly partUniforms = new Map<number, DeviceBuffer>();
  private forwards = 0;
  private tokens = 0;
  private lastForwardMs = 0;
  private busy = false;
  protected disposed = false;
  /** Pool buffers, copied page by page for copy-on-write: [name, bytes per page]. */
  private readonly pagedBuffers: [string, number][];
  private readonly moe: MoeRouting | null;
  private readonly timing: { ns: Float64Array; calls: Uint32Array } | null;
  /** Greedy sampling on the device: the argmax kernel bound to the logits, or null (host sampling). */
  private readonly greedy: { binding: DeviceBinding; kernel: CompiledKernel } | null;

  protected constructor(o: RunnerOptions, readonly device: Device, private readonly bufs: ProgramBuffers,
    kernels: Map<string, CompiledKernel>, private readonly setupMs: number) {
    super(o.program, { maxSequences: bufs.sizing.maxSeqs, kvPages: bufs.sizing.pages });
    this.backend = device.name;
    this.maxTokensPerForward = bufs.sizing.maxTokens;
    this.pagedBuffers = o.program.buffers.filter((b) => (b.perPage ?? 0) > 0).map((b) => [b.name, b.perPage! * 4]);
    this.moe = o.moeStats ? MoeRouting.forProgram(o.program) : null;
    if (o.profile && !device.canTime) throw new RunnerError(`profiling needs a device that can time dispatches; ${device.description} cannot`);
    const n = o.program.steps.length;
    this.timing = o.profile ? { ns: new Float64Array(n), calls: new Uint32Array(n) } : null;
    this.plan = o.program.steps.map((s) => {
      const kernel = kernels.get(s.kernel);
      if (!kernel) throw new RunnerError(`step ${s.label} uses kernel ${s.kernel}, which the program does not declare`);
      const part = stepPart(kernel.spec);
      let uniform = part === 0 ? bufs.uniform : this.partUniforms.get(part);
      if (!uniform) this.partUniforms.set(part, uniform = device.allocate(`step-uniform part ${part}`, STEP_UNIFORM_BYTES, 'uniform'));
      return { kernel, bindings: kernel.variants.map(() => undefined), args: s.args, uniform };
    });
    const argmax = [...kernels.values()].find((k) => k.spec.kind === 'argmax');
    this.greedy = argmax && bufs.has(GREEDY_BUFFERS.rows) && bufs.has(GREEDY_BUFFERS.ids)
      ? { kernel: argmax, binding: this.bind(0, argmax, { x: o.program.logits, rows: GREEDY_BUFFERS.rows, out: GREEDY_BUFFERS.ids }, bufs.uniform) }
      : null;
  }

  /** Allocates, uploads and compiles everything a program needs on `device`. */
  static async open(o: RunnerOptions): Promise<ProgramRunner> {
    const { bufs, kernels, setupMs } = await ProgramRunner.prepare(o);
    return new ProgramRunner(o, o.device, bufs, kernels, setupMs);
  }

  protected static async prepare(o: RunnerOptions): Promise<{ bufs: ProgramBuffers; kernels: Map<string, CompiledKernel>; setupMs: number }> {
    if (o.program.format !== PROGRAM_FORMAT) throw new RunnerError(`unsupported program format ${String(o.program.format)}`);
    if (o.shareWeightsWith && o.shareWeightsWith.device !== o.device) throw new RunnerError('shareWeightsWith: a runner on another device');
    const t0 = performance.now();
    const k = o.program.kv;
    const maxSeqs = o.maxSequences ?? k.maxSequences;
    const sizing = chooseSizing(o.program, o.device, { maxTokens: o.maxTokensPerForward, maxSeqs, pages: o.kvPages ?? maxSeqs * k.pagesPerSequence });
    const bufs = await allocateProgramBuffers(o.device, o.program, o.weights, sizing, o.shareWeightsWith?.bufs, o.deviceMemoryBytes);
    try {
      const kernels = await compileProgramKernels(o.device, o.program, o.backend, o.target);
      const argmax = await compileArgmax(o.device, o.backend, o.program.model.vocab, o.target);
      if (argmax) kernels.set(argmax.key, argmax);
      return { bufs, kernels, setupMs: performance.now() - t0 };
    } catch (e) {
      bufs.destroy();
      throw e;
    }
  }

  protected async execute(step: BatchStep, rowFrom: number, rowTo: number): Promise<Float32Array> {
    const V = this.model.vocab;
    const d = await this.submitStep(step, { rows: null, bytes: (rowTo - rowFrom) * V * 4, offset: rowFrom * V * 4 });
    return new Float32Array(d.buffer, d.byteOffset, d.byteLength / 4);
  }

  /** Each item's greedy next token, chosen on the device: one id per sequence comes back, not its logits. */
  override async forwardGreedy(items: readonly BatchItem[]): Promise<number[]> {
    if (!this.greedy) return super.forwardGreedy(items);
    return this.runStep(items, async (step) => {
      const rows = Int32Array.from(step.rows, ([, end]) => end - 1);
      const d = await this.submitStep(step, { rows, bytes: rows.length * 4, offset: 0 });
      const ids = Array.from(new Int32Array(d.buffer, d.byteOffset, rows.length));
      if (ids.some((id) => id < 0)) throw new RunnerError('cannot sample: every logit is NaN');
      return ids;
    });
  }

  /**
   * One forward: inputs, the program's dispatches and the read-back of either logits rows
   * (rows null: `bytes` of the logits from `offset`) or, with `rows`, the greedy ids of those
   * logits rows (the argmax kernel dispatched after the program's steps).
   */
  private async submitStep(step: BatchStep, out: { rows: Int32Array | null; bytes: number; offset: number }): Promise<Uint8Array> {
    if (this.disposed) throw new RunnerError('this engine was disposed');
    if (this.busy) throw new RunnerError('forward called while another forward is running; await each one');
    const T = step.tokens.length;
    this.busy = true;
    const t0 = performance.now();
    try {
      const tb = step.tables;
      const inputs: Record<(typeof INPUTS)[number], Int32Array> = {
        tokens: step.tokens, positions: step.positions, kv_slot: tb.slots, kv_seq: tb.seqOf, kv_table: packKvTable(tb),
      };
      for (const name of INPUTS) if (inputs[name].length && this.bufs.has(name)) this.device.upload(this.bufs.get(name), 0, inputs[name]);
      this.device.upload(this.bufs.uniform, 0, packStepUniform(T));
      for (const [part, u] of this.partUniforms) this.device.upload(u, 0, packStepUniform(T, part));
      const dispatches: DeviceDispatch[] = this.plan.map((s) => {
        const vi = chooseVariant(s.kernel, T);
        const v = s.kernel.variants[vi];
        const grid = checkedGrid(v, T, this.device.limits.maxGroupsPerDim);
        return { binding: s.bindings[vi] ??= this.bind(vi, s.kernel, s.args, s.uniform), grid };
      });
      let readback = { buffer: this.bufs.get(this.program.logits), offset: out.offset, bytes: out.bytes };
      if (out.rows) {
        const g = this.greedy!;
        this.device.upload(this.bufs.get(GREEDY_BUFFERS.rows), 0, out.rows);
        dispatches.push({ binding: g.binding, grid: checkedGrid(g.kernel.variants[0], out.rows.length, this.device.limits.maxGroupsPerDim) });
        readback = { buffer: this.bufs.get(GREEDY_BUFFERS.ids), offset: 0, bytes: out.bytes };
      }
      // Copy-on-write of shared pages the step writes into: whole pages, every layer.
      const copies: DeviceCopy[] = step.copies.flatMap((c) => this.pagedBuffers.map(([name, bytes]) => {
        const b = this.bufs.get(name);
        return { from: b, fromOffset: c.from * bytes, to: b, toOffset: c.to * bytes, bytes };
      }));
      const routing = this.moe?.readbacks(T, (n) => this.bufs.get(n)) ?? [];
      const r = await this.device.submit({ copies, dispatches, readbacks: [readback, ...routing], timed: this.timing !== null });
      this.moe?.add(r.data.slice(1), T);
      // The program's steps only (a greedy argmax after them is not a step).
      if (this.timing && r.timings) for (let i = 0; i < this.plan.length; i++) { this.timing.ns[i] += r.timings[i]; this.timing.calls[i]++; }
      this.forwards++;
      this.tokens += T;
      return r.data[0];
    } finally {
      this.lastForwardMs = performance.now() - t0;
      this.busy = false;
    }
  }

  /** Binds a step's buffers by name, in the variant's binding order (its step uniform last). */
  private bind(vi: number, k: CompiledKernel, args: Readonly<Record<string, string>>, uniform: DeviceBuffer): DeviceBinding {
    const v = k.variants[vi];
    const buffers = v.rendered.bindings.map((b) => {
      if (b.access === 'uniform') return uniform;
      const name = args[b.name];
      if (!name) throw new RunnerError(`kernel ${v.rendered.key} binds '${b.name}', but its step gives no buffer for it`);
      return this.bufs.get(name);
    });
    return this.device.bind(v, buffers);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const u of this.partUniforms.values()) this.device.free(u);
    this.bufs.destroy();
  }

  /** Device time per Program step over the forwards since creation or the last reset, when created with profile: true. */
  profile(reset = false): StepProfile[] | null {
    const t = this.timing;
    if (!t) return null;
    const r = this.program.steps.map((s, i) => ({ label: s.label, kernel: s.kernel, ns: t.ns[i], calls: t.calls[i] }));
    if (reset) { t.ns.fill(0); t.calls.fill(0); }
    return r;
  }

  /** Tokens per expert of every MoE layer, when created with moeStats: true. */
  moeStats(): MoeStatsReport | null { return this.moe?.stats.report() ?? null; }

  stats(): EngineStats {
    const d = this.plan.length;
    return {
      backend: this.backend, forwards: this.forwards, tokens: this.tokens, dispatches: this.forwards * d,
      dispatchesPerForward: d, lastForwardMs: this.lastForwardMs, setupMs: this.setupMs, bytesAllocated: this.bufs.bytes,
      activationBytes: this.bufs.activationBytes,
    };
  }
}
