// The fusions on the families' specs (examples/tiny-*.infer): gelu(gate) * up reaches the
// down projection's prologue (fuseGeluMul) and the other fusions still apply around the
// new ops (biases, per-head norms, slices, soft-caps, per-layer windows); each fusion off
// (--no-fuse KEY) gives the same logits on the float64 interpreter, and with all of them
// off no fused node is left. The epilogue and q/k-norm fusions (fuseBias, fuseSoftcap,
// fuseQkNorm) happen where the specs put them, each saves the dispatches it should per decode
// step, and --no-fuse KEY turns exactly that one off.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuKvCache, interpret, type Graph } from '../../compiler/ir/index.ts';
import { FUSION_KEYS, parseNoFuse } from '../../compiler/pipeline.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import type { OpArgs } from '../../compiler/ir/ops.ts';

const SPECS = ['tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-phi3', 'tiny-mistral'];

function compiled(name: string, noFuse = '') {
  const c = compileSpec(readFileSync(`examples/${name}.infer`, 'utf8'), `${name}.infer`, { noFuse: parseNoFuse(noFuse) });
  expect(c.diagnostics).toEqual([]);
  return c;
}
const graphOf = (name: string, noFuse = ''): Graph => compiled(name, noFuse).graph!;
/** Dispatches of one decode step: the Program's steps (each runs once per forward). */
const dispatches = (name: string, noFuse = ''): number => compiled(name, noFuse).program!.steps.length;
const fusedArgs = (g: Graph) => g.nodes.filter((n) => n.op === 'fused_matmul').map((n) => n.arg as OpArgs['fused_matmul']);

/** Logits of a 40-token prompt (past the 32-token window of tiny-gemma2's even layers). */
function logits(g: Graph): Float64Array {
  const m = g.model, T = 40;
  const kv = new CpuKvCache(m.layers, m.kvHeads, m.headDim, m.maxContext, { dtype: m.kv.dtype });
  const tokens = Int32Array.from({ length: T }, (_, i) => (i * 37 + 5) % m.vocab), positions = Int32Array.from({ length: T }, (_, i) => i);
  return interpret(g, new RandomWeights(g.params, 7), kv, { tokens, positions }).get(g.logits) as Float64Array;
}

const fusedPrologues = (g: Graph) => g.nodes.filter((n) => n.op === 'fused_matmul').map((n) => (n.arg as { prologue: string }).prologue);

describe('fusions on the family examples', () => {
  it('gelu(gate) * up becomes the gelu_mul prologue of the down projection (one per layer), and --no-fuse gelu_mul keeps it apart', () => {
    const g = graphOf('tiny-gemma2'), apart = graphOf('tiny-gemma2', 'gelu_mul');
    expect(fusedPrologues(g).filter((p) => p === 'gelu_mul')).toHaveLength(g.model.layers);
    expect(g.nodes.some((n) => n.op === 'unary' && (n.arg as { fn: string }).fn === 'gelu')).toBe(false);
    expect(fusedPrologues(apart)).not.toContain('gelu_mul');
    expect(apart.nodes.filter((n) => n.op === 'unary' && (n.arg as { fn: string }).fn === 'gelu')).toHaveLength(g.model.layers);
  });

  it('Qwen2\'s q/k/v biases become matmul epilogues (3 per layer, 3 dispatches per layer fewer), and --no-fuse bias keeps them apart', () => {
    const g = graphOf('tiny-qwen2'), apart = graphOf('tiny-qwen2', 'bias'), L = g.model.layers;
    expect(fusedArgs(g).filter((a) => a.bias)).toHaveLength(3 * L);
    expect(g.nodes.filter((n) => n.op === 'binary' && n.src.some((s) => s.op === 'param'))).toEqual([]);
    expect(fusedArgs(apart).filter((a) => a.bias)).toEqual([]);
    expect(dispatches('tiny-qwen2', 'bias')).toBe(dispatches('tiny-qwen2') + 3 * L);
    expect(compiled('tiny-qwen2').program!.kernels.filter((k) => k.spec.kind === 'matmul' && k.spec.bias).length).toBeGreaterThan(0);
  });

  it('Gemma 2\'s final-logit soft-capping becomes the output projection\'s epilogue (3 elementwise dispatches fewer), and --no-fuse softcap keeps it apart', () => {
    const g = graphOf('tiny-gemma2'), apart = graphOf('tiny-gemma2', 'softcap');
    expect(g.logits.op).toBe('fused_matmul');
    expect((g.logits.arg as OpArgs['fused_matmul']).softcap).toBe(30);
    expect(g.nodes.some((n) => n.op === 'unary' && (n.arg as OpArgs['unary']).fn === 'tanh')).toBe(false);
    expect(fusedArgs(apart).filter((a) => a.softcap !== undefined)).toEqual([]);
    expect(dispatches('tiny-gemma2', 'softcap')).toBe(dispatches('tiny-gemma2') + 3);
  });

  it('Qwen3\'s per-head q/k norms fold into the q RoPE and the K append (2 dispatches per layer fewer), and --no-fuse qk_norm keeps them apart', () => {
    const g = graphOf('tiny-qwen3'), apart = graphOf('tiny-qwen3', 'qk_norm'), L = g.model.layers;
    const normed = (x: Graph, op: 'rope' | 'kv_store') => x.nodes.filter((n) => n.op === op && (n.arg as { norm?: number }).norm !== undefined);
    expect(normed(g, 'rope')).toHaveLength(L);
    expect(normed(g, 'kv_store')).toHaveLength(L);
    expect(g.nodes.filter((n) => n.op === 'rope' || n.op === 'rmsnorm' && n.shape.length === 3)).toHaveLength(L);
    expect([...normed(apart, 'rope'), ...normed(apart, 'kv_store')]).toEqual([]);
    expect(dispatches('tiny-qwen3', 'qk_norm')).toBe(dispatches('tiny-qwen3') + 2 * L);
    // Without the KV-append fusion K's norm still folds into its own RoPE.
    expect(normed(graphOf('tiny-qwen3', 'kv_append'), 'rope')).toHaveLength(2 * L);
  });

  for (const name of SPECS) {
    it(`${name}: every fusion off, one at a time and all, computes the same logits`, () => {
      const fused = graphOf(name), want = logits(fused);
      expect(fused.nodes.some((n) => n.op === 'attention')).toBe(true);
      for (const key of [...FUSION_KEYS, 'all']) {
        const got = logits(graphOf(name, key));
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
        expect(worst, `${name} --no-fuse ${key}`).toBeLessThan(1e-9);
      }
      expect(graphOf(name, 'all').nodes.filter((n) => ['fused_matmul', 'attention', 'moe_route', 'moe_experts'].includes(n.op) || (n.op === 'kv_store' && (n.arg as { rope: unknown }).rope !== null)
        || (n.arg as { norm?: number }).norm !== undefined)).toEqual([]);
    });
  }
});
