// The CPU engine: the float64 interpreter behind the Engine interface. It is the
// reference the WebGPU engine is tested against, and a fallback that needs no
// adapter. It runs the (fused) graph the Program was scheduled from; the Program
// only supplies the dispatch count, so stats compare like for like with WebGPU.
import type { Graph, ModelInfo } from '../../compiler/ir/graph.ts';
import { CpuKvCache, interpret, type WeightSource } from '../../compiler/ir/interpret.ts';
import type { Program } from '../../compiler/program.ts';
import type { Engine, EngineStats, ForwardOptions } from '../engine.ts';
import { validateWeights } from '../weights/random.ts';
import { routingNodes, routingShape } from '../../compiler/ir/moe.ts';
import type { Node } from '../../compiler/ir/graph.ts';
import { MoeStats, type MoeStatsReport } from '../moeStats.ts';

export class CpuEngine implements Engine {
  readonly backend = 'cpu' as const;
  readonly model: ModelInfo;
  readonly maxTokensPerForward: number;
  private kv: CpuKvCache;
  private readonly dispatchesPerForward: number;
  private forwards = 0;
  private tokens = 0;
  private lastForwardMs = 0;
  private readonly setupMs: number;
  private disposed = false;
  private readonly routings: Node[];
  private readonly moe: MoeStats | null;

  constructor(private readonly graph: Graph, private readonly weights: WeightSource, program?: Program) {
    const t0 = performance.now();
    this.model = graph.model;
    this.maxTokensPerForward = graph.model.maxContext;
    validateWeights(graph.params, weights);
    this.kv = this.freshCache();
    this.dispatchesPerForward = program?.steps.length ?? 0;
    this.routings = routingNodes(graph.nodes);
    this.moe = this.routings.length ? new MoeStats(this.routings.map(routingShape)) : null;
    this.setupMs = performance.now() - t0;
  }

  private freshCache(): CpuKvCache {
    const m = this.model;
    return new CpuKvCache(m.layers, m.kvHeads, m.headDim, m.maxContext);
  }

  async forward(tokens: Int32Array, positions: Int32Array, options: ForwardOptions = {}): Promise<Float32Array> {
    if (this.disposed) throw new Error('this engine was disposed');
    const T = tokens.length;
    if (T === 0) throw new Error('forward needs at least one token');
    if (T > this.maxTokensPerForward) throw new Error(`forward of ${T} tokens exceeds this engine's limit of ${this.maxTokensPerForward}`);
    const t0 = performance.now();
    const values = interpret(this.graph, this.weights, this.kv, { tokens, positions });
    const logits = values.get(this.graph.logits)!;
    this.moe?.add(this.routings.map((n) => values.get(n)!), T);
    const V = this.model.vocab;
    const rows = options.rows === 'last' ? logits.subarray((T - 1) * V, T * V) : logits;
    const out = Float32Array.from(rows);
    this.forwards++;
    this.tokens += T;
    this.lastForwardMs = performance.now() - t0;
    return out;
  }

  reset(): void { this.kv = this.freshCache(); }

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
