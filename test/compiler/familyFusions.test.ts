// The fusions on the families' specs (examples/tiny-*.infer): gelu(gate) * up reaches the
// down projection's prologue (fuseGeluMul) and the other fusions still apply around the
// new ops (biases, per-head norms, slices, soft-caps, per-layer windows); each fusion off
// (--no-fuse KEY) gives the same logits on the float64 interpreter, and with all of them
// off no fused node is left.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuKvCache, interpret, type Graph } from '../../compiler/ir/index.ts';
import { FUSION_KEYS, parseNoFuse } from '../../compiler/pipeline.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';

const SPECS = ['tiny-qwen2', 'tiny-qwen3', 'tiny-gemma2', 'tiny-phi3', 'tiny-mistral'];

function graphOf(name: string, noFuse = ''): Graph {
  const c = compileSpec(readFileSync(`examples/${name}.infer`, 'utf8'), `${name}.infer`, { noFuse: parseNoFuse(noFuse) });
  expect(c.diagnostics).toEqual([]);
  return c.graph!;
}

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
      expect(graphOf(name, 'all').nodes.filter((n) => ['fused_matmul', 'attention', 'moe_route', 'moe_experts'].includes(n.op) || (n.op === 'kv_store' && (n.arg as { rope: unknown }).rope !== null))).toEqual([]);
    });
  }
});
