// Each fusion: the fused node is present, the unfused pattern is gone, and the
// fused graph computes what the unfused one does (float64 interpreter, over
// random model shapes, seeds and prompt lengths).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuKvCache, GraphBuilder, interpret, type Graph, type Node, type OpArgs } from '../../compiler/ir/index.ts';
import { type KvDType } from '../../program/model.ts';
import { fuseAttention } from '../../compiler/passes/fuseAttention.ts';
import { fuseKvAppend } from '../../compiler/passes/fuseKvAppend.ts';
import { fuseNorm } from '../../compiler/passes/fuseNorm.ts';
import { fuseResidual } from '../../compiler/passes/fuseResidual.ts';
import { fuseSiluMul } from '../../compiler/passes/fuseSiluMul.ts';
import { fuseBias } from '../../compiler/passes/fuseBias.ts';
import { fuseSoftcap } from '../../compiler/passes/fuseSoftcap.ts';
import { fuseQkNorm } from '../../compiler/passes/fuseQkNorm.ts';
import { parseNoFuse, runPipeline } from '../../compiler/pipeline.ts';
import { attentionOverCache } from '../../compiler/ir/attention.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';
import { fixtureWeights } from '../fixtures/fixtureWeights.ts';

const shapeArb = fc.record({
  kvHeads: fc.integer({ min: 1, max: 3 }), group: fc.integer({ min: 1, max: 3 }), headDim: fc.constantFrom(2, 4, 6, 8),
  layers: fc.integer({ min: 1, max: 2 }), ffn: fc.integer({ min: 3, max: 40 }), vocab: fc.integer({ min: 5, max: 40 }),
  seed: fc.integer({ min: 1, max: 1000 }), T: fc.integer({ min: 1, max: 6 }),
}).map((r) => ({ shape: { ...r, heads: r.kvHeads * r.group, dim: r.kvHeads * r.group * r.headDim, maxContext: 16 } as LlamaShape, seed: r.seed, T: r.T }));

function logitsOf(g: Graph, seed: number, T: number): Float64Array {
  const m = g.model;
  const kv = new CpuKvCache(m.layers, m.kvHeads, m.headDim, m.maxContext, { dtype: m.kv.dtype });
  const tokens = Int32Array.from({ length: T }, (_, i) => (i * 7 + seed) % m.vocab);
  const positions = Int32Array.from({ length: T }, (_, i) => i);
  return interpret(g, fixtureWeights(g, seed), kv, { tokens, positions }).get(g.logits) as Float64Array;
}

function maxRelDiff(a: Float64Array, b: Float64Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / den;
}

const count = (g: Graph, pred: (n: Node) => boolean) => g.nodes.filter(pred).length;
const fused = (n: Node, prologue: string, residual?: boolean) => n.op === 'fused_matmul'
  && (n.arg as OpArgs['fused_matmul']).prologue === prologue && (residual === undefined || (n.arg as OpArgs['fused_matmul']).residual === residual);

describe('fusion passes', () => {
  it('fuseNorm folds every rmsnorm into the matmuls that read it', () => {
    fc.assert(fc.property(shapeArb, ({ shape, seed, T }) => {
      const g = denseLlama(shape);
      const f = fuseNorm.run(g);
      // q, k, v and gate, up per layer, plus the logits head
      expect(count(f, (n) => fused(n, 'rmsnorm'))).toBe(5 * shape.layers + 1);
      expect(count(f, (n) => n.op === 'rmsnorm')).toBe(0);
      expect(maxRelDiff(logitsOf(f, seed, T), logitsOf(g, seed, T))).toBeLessThan(1e-12);
    }), { numRuns: 25 });
  });

  it('fuseSiluMul folds silu(gate) * up into the down projection', () => {
    fc.assert(fc.property(shapeArb, ({ shape, seed, T }) => {
      const g = denseLlama(shape);
      const f = fuseSiluMul.run(g);
      expect(count(f, (n) => fused(n, 'silu_mul'))).toBe(shape.layers);
      expect(count(f, (n) => n.op === 'unary')).toBe(0);
      expect(maxRelDiff(logitsOf(f, seed, T), logitsOf(g, seed, T))).toBeLessThan(1e-12);
    }), { numRuns: 25 });
  });

  it('fuseResidual folds residual adds into matmul epilogues', () => {
    fc.assert(fc.property(shapeArb, ({ shape, seed, T }) => {
      const g = denseLlama(shape);
      const f = fuseResidual.run(g);
      expect(count(f, (n) => fused(n, 'none', true))).toBe(2 * shape.layers);
      expect(count(f, (n) => n.op === 'binary' && (n.arg as OpArgs['binary']).fn === 'add')).toBe(0);
      expect(maxRelDiff(logitsOf(f, seed, T), logitsOf(g, seed, T))).toBeLessThan(1e-12);
    }), { numRuns: 25 });
  });

  it('the whole pipeline composes prologues with epilogues and keeps the meaning', () => {
    fc.assert(fc.property(shapeArb, ({ shape, seed, T }) => {
      const g = denseLlama(shape);
      const { graph: f, applied } = runPipeline(g);
      expect(applied).toEqual(['fuseAttention', 'fuseMoe', 'fuseNorm', 'fuseSiluMul', 'fuseGeluMul', 'fuseBias', 'fuseSoftcap', 'fuseResidual', 'fuseQkNorm', 'fuseKvAppend']);
      expect(count(f, (n) => fused(n, 'silu_mul', true))).toBe(shape.layers);
      expect(count(f, (n) => n.op === 'binary' || n.op === 'unary' || n.op === 'rmsnorm' || n.op === 'matmul' || n.op === 'softmax' || n.op === 'attn_scores')).toBe(0);
      expect(maxRelDiff(logitsOf(f, seed, T), logitsOf(g, seed, T))).toBeLessThan(1e-12);
    }), { numRuns: 20 });
  });

  it('fuseAttention makes scores, softmax and P.V one attention per layer, for every KV format, window and page size', () => {
    fc.assert(fc.property(shapeArb, fc.constantFrom('f32', 'f16', 'int8', 'int4') as fc.Arbitrary<KvDType>, fc.option(fc.integer({ min: 1, max: 8 })), fc.constantFrom(1, 2, 4, 16),
      ({ shape, seed, T }, kvDtype, window, pageSize) => {
        const g = denseLlama({ ...shape, kvDtype, window, pageSize });
        expect(count(g, (n) => n.op === 'attention')).toBe(0);
        const f = fuseAttention.run(g);
        const att = f.nodes.filter((n) => n.op === 'attention');
        expect(att.map((n) => (n.arg as OpArgs['attention']).layer)).toEqual(Array.from({ length: shape.layers }, (_, l) => l));
        expect(att.every((n) => (n.arg as OpArgs['attention']).window === window)).toBe(true);
        expect(count(f, (n) => n.op === 'attn_scores' || n.op === 'attn_values' || n.op === 'softmax')).toBe(0);
        // Fused and unfused attention over the same quantised cache: only float64 rounding differs.
        expect(maxRelDiff(logitsOf(f, seed, T), logitsOf(g, seed, T))).toBeLessThan(1e-12);
      }), { numRuns: 25 });
  });

  it('leaves attention unfused when the probabilities have another user', () => {
    const model = denseLlama({ vocab: 9, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 6, maxContext: 4 }).model;
    const b = new GraphBuilder();
    const pos = b.positions();
    const x = b.node('embed', {}, [b.tokens(), b.param('token_embd', [8, 9])]);
    const kv = (name: string) => b.node('reshape', { shape: ['T', 1, 4] }, [b.node('matmul', {}, [x, b.param(name, [8, 4])])]);
    const cache = b.node('kv_store', { layer: 0, rope: null }, [kv('wk'), kv('wv'), pos]);
    const q = b.node('reshape', { shape: ['T', 2, 4] }, [x]);
    const out = attentionOverCache(b, q, cache, pos, { layer: 0, causal: true, window: null, scale: 0.5 }, 4);
    // context 4 = head_dim 4, so the probabilities [T, 2, 4] can be added to the output.
    const both = b.node('binary', { fn: 'add' }, [out, out.src[0]]);
    const g = b.finish(model, b.node('matmul', {}, [b.node('reshape', { shape: ['T', 8] }, [both]), b.param('output', [8, 9])]));
    const f = fuseAttention.run(g);
    expect(count(f, (n) => n.op === 'attention')).toBe(0);
    expect(count(f, (n) => n.op === 'attn_scores')).toBe(1);
  });

  it('fuseKvAppend folds the RoPE of K into the KV append, for every KV format', () => {
    fc.assert(fc.property(shapeArb, fc.constantFrom('f32', 'f16', 'int8', 'int4') as fc.Arbitrary<KvDType>, ({ shape, seed, T }, kvDtype) => {
      const g = denseLlama({ ...shape, kvDtype });
      const f = fuseKvAppend.run(g);
      const appends = f.nodes.filter((n) => n.op === 'kv_store');
      expect(appends.map((n) => (n.arg as OpArgs['kv_store']).rope)).toEqual(Array(shape.layers).fill(10000));
      // Only the queries' rope is left.
      expect(count(f, (n) => n.op === 'rope')).toBe(shape.layers);
      expect(maxRelDiff(logitsOf(f, seed, T), logitsOf(g, seed, T))).toBeLessThan(1e-12);
    }), { numRuns: 20 });
  });

  it('leaves a residual unfused when the matmul result has another user', () => {
    const b = new GraphBuilder();
    const x = b.node('embed', {}, [b.tokens(), b.param('token_embd', [4, 9])]);
    const y = b.node('matmul', {}, [x, b.param('w', [4, 4])]);
    const sum = b.node('binary', { fn: 'add' }, [x, y]);
    const g = b.finish(denseLlama({ vocab: 9, dim: 4, layers: 1, heads: 1, kvHeads: 1, headDim: 4, ffn: 4 }).model,
      b.node('binary', { fn: 'mul' }, [sum, y]));
    const f = fuseResidual.run(g);
    expect(count(f, (n) => n.op === 'fused_matmul')).toBe(0);
    expect(count(f, (n) => n.op === 'matmul')).toBe(1);
  });

  // The families' fusions refuse what they must not fold (their positive cases and the
  // meaning they keep: familyFusions.test.ts on the family examples).
  it('leaves a bias, a soft-cap and a q/k norm unfused where folding would change or repeat work', () => {
    const model = denseLlama({ vocab: 9, dim: 4, layers: 1, heads: 1, kvHeads: 1, headDim: 4, ffn: 4 }).model;
    const b = new GraphBuilder();
    const x = b.node('embed', {}, [b.tokens(), b.param('token_embd', [4, 9])]);
    const y = b.node('matmul', {}, [x, b.param('w', [4, 4])]);
    // A matmul with another user (its bias add would be computed twice), and a bias that is not [N].
    const biased = b.node('binary', { fn: 'add' }, [y, b.param('b', [4])]);
    const notBias = b.node('binary', { fn: 'add' }, [b.node('matmul', {}, [x, b.param('w2', [4, 4])]), b.constant(2)]);
    // c * tanh(y / d) with c != d is not a soft-cap.
    const y3 = b.node('matmul', {}, [x, b.param('w3', [4, 4])]);
    const skewed = b.node('binary', { fn: 'mul' }, [b.node('unary', { fn: 'tanh' }, [b.node('binary', { fn: 'div' }, [y3, b.constant(3)])]), b.constant(4)]);
    // A per-head norm read by something besides the rope.
    const heads = b.node('reshape', { shape: ['T', 1, 4] }, [x]);
    const normed = b.node('rmsnorm', { eps: 1e-6 }, [heads, b.param('q_norm', [4])]);
    const roped = b.node('rope', { theta: 1e4 }, [normed, b.positions()]);
    const flat = (n: Node) => b.node('reshape', { shape: ['T', 4] }, [n]);
    const out = [biased, y, notBias, skewed, flat(roped), flat(normed)].reduce((acc, n) => b.node('binary', { fn: 'add' }, [acc, n]));
    const g = b.finish(model, out);
    for (const pass of [fuseBias, fuseSoftcap, fuseQkNorm]) {
      const f = pass.run(g);
      expect(count(f, (n) => n.op === 'fused_matmul' || (n.op === 'rope' && (n.arg as OpArgs['rope']).norm !== undefined)), pass.name).toBe(0);
      expect(f.nodes.length, pass.name).toBe(g.nodes.length);
    }
  });

  it('--no-fuse switches passes off and rejects unknown names', () => {
    const g = denseLlama({ vocab: 9, dim: 8, layers: 1, heads: 2, kvHeads: 1, headDim: 4, ffn: 6 });
    expect(runPipeline(g, parseNoFuse('norm,residual,moe')).applied).toEqual(['fuseAttention', 'fuseSiluMul', 'fuseGeluMul', 'fuseBias', 'fuseSoftcap', 'fuseQkNorm', 'fuseKvAppend']);
    expect(runPipeline(g, parseNoFuse('attention')).graph.nodes.some((n) => n.op === 'attn_scores')).toBe(true);
    expect(runPipeline(g, parseNoFuse('all')).graph.nodes.length).toBe(g.nodes.length);
    expect(() => parseNoFuse('norm,bogus')).toThrow(/unknown fusion 'bogus'/);
  });
});
