// The CPU engine: the float64 interpreter behind the Engine interface. It is the
// reference the WebGPU engine is tested against, and a fallback that needs no
// adapter. It runs the (fused) graph the Program was scheduled from over a float64
// page pool laid out like the device's; the Program supplies the KV plan and the
// dispatch count, so stats compare like for like with WebGPU.
import type { Graph } from '../../compiler/ir/graph.ts';
import { CpuKvCache, interpret } from '../../compiler/ir/interpret.ts';
import { type WeightSource } from '../../program/weights.ts';
import type { Program } from '../../program/program.ts';
import type { Engine, EngineStats } from '../engine.ts';
import type { BatchStep } from '../kv/batchStep.ts';
import { PagedEngine, type PoolOptions } from '../pagedEngine.ts';
import { validateWeights } from '../weights/random.ts';
import { routingNodes, routingShape } from '../../compiler/ir/moe.ts';
import type { Node } from '../../compiler/ir/graph.ts';
import { MoeStats, type MoeStatsReport } from '../moeStats.ts';

export class CpuEngine extends PagedEngine implements Engine {
  readonly backend = 'cpu' as const;
  readonly maxTokensPerForward: number;
  private readonly cache: CpuKvCache;
  private readonly dispatchesPerForward: number;
  private forwards = 0;
  private tokens = 0;
  private lastForwardMs = 0;
  private readonly setupMs: number;
  private disposed = false;
  private readonly routings: Node[];
  private readonly moe: MoeStats | null;

  constructor(private readonly graph: Graph, private readonly weights: WeightSource, program: Program, pool: PoolOptions = {}) {
    super(program, pool);
    const t0 = performance.now();
    const m = this.model;
    this.maxTokensPerForward = m.maxContext * this.maxSequences;
    validateWeights(graph.params, weights);
    const k = program.kv;
    this.cache = new CpuKvCache(m.layers, m.kvHeads, m.headDim, this.kv.pool.total * k.pageSize, { pageSize: k.pageSize, dtype: k.dtype });
    this.dispatchesPerForward = program.steps.length;
    this.routings = routingNodes(graph.nodes);
    this.moe = this.routings.length ? new MoeStats(this.routings.map(routingShape)) : null;
    this.setupMs = performance.now() - t0;
  }

  protected async execute(step: BatchStep, rowFrom: number, rowTo: number): Promise<Float32Array> {
    if (this.disposed) throw new Error('this engine was disposed');
    const t0 = performance.now();
    for (const c of step.copies) this.cache.copyPage(c.from, c.to);
    const values = interpret(this.graph, this.weights, this.cache, { tokens: step.tokens, positions: step.positions, kv: step.tables });
    const logits = values.get(this.graph.logits)!;
    this.moe?.add(this.routings.map((n) => values.get(n)!), step.tokens.length);
    const V = this.model.vocab;
    const out = Float32Array.from(logits.subarray(rowFrom * V, rowTo * V));
    this.forwards++;
    this.tokens += step.tokens.length;
    this.lastForwardMs = performance.now() - t0;
    return out;
  }

  /** Tokens per expert of every MoE layer since creation; null for a dense model. */
  moeStats(): MoeStatsReport | null { return this.moe?.report() ?? null; }

  dispose(): void { this.disposed = true; }

  stats(): EngineStats {
    return {
      backend: this.backend, forwards: this.forwards, tokens: this.tokens,
      dispatches: this.forwards * this.dispatchesPerForward, dispatchesPerForward: this.dispatchesPerForward,
      lastForwardMs: this.lastForwardMs, setupMs: this.setupMs, bytesAllocated: 0,
    };
  }
}
