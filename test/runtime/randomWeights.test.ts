// Seeded random weights: determinism per (seed, name), independence from the
// other params, the scales that keep a random model's logits informative, and
// shape validation.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuKvCache, interpret } from '../../compiler/ir/index.ts';
import { RandomWeights, randomTensor, validateWeights, WeightShapeError } from '../../runtime/weights/random.ts';
import { denseLlama } from '../fixtures/denseLlama.ts';

function moments(a: Float32Array): { mean: number; std: number } {
  let s = 0, ss = 0;
  for (const x of a) { s += x; ss += x * x; }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(ss / a.length - mean * mean) };
}

describe('random weights', () => {
  it('depend only on (seed, name, shape): order and other params do not matter', () => {
    fc.assert(fc.property(fc.integer(), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), (seed, K, N) => {
      const a = new RandomWeights([{ name: 'w', shape: [K, N] }, { name: 'n', shape: [K] }], seed);
      const b = new RandomWeights([{ name: 'n', shape: [K] }, { name: 'x', shape: [3] }, { name: 'w', shape: [K, N] }], seed);
      expect(a.get('w')).toEqual(b.get('w'));
      expect(a.get('n')).toEqual(b.get('n'));
      expect(a.get('w')).toBe(a.get('w')); // cached: both engines share one array
      expect(randomTensor('w', [K, N], seed)).toEqual(a.get('w'));
    }), { numRuns: 50 });
  });

  it('differ between seeds and between names', () => {
    const w = (name: string, seed: number) => Array.from(randomTensor(name, [16, 16], seed));
    expect(w('a', 1)).not.toEqual(w('a', 2));
    expect(w('a', 1)).not.toEqual(w('b', 1));
    expect(w('blk.0.attn_q', 7)).not.toEqual(w('blk.1.attn_q', 7));
  });

  it('are pinned: the generator must not drift between versions', () => {
    const t = randomTensor('blk.0.attn_q', [4, 2], 7);
    const again = randomTensor('blk.0.attn_q', [4, 2], 7);
    expect(Array.from(t)).toEqual(Array.from(again));
    expect(Array.from(t).map((x) => Number(x.toFixed(6)))).toMatchInlineSnapshot(`
      [
        0.067748,
        0.169896,
        -0.458722,
        -0.528302,
        -0.083682,
        0.862951,
        -0.281848,
        -0.535879,
      ]
    `);
  });

  it('have the documented scales', () => {
    const K = 256;
    const mm = moments(randomTensor('blk.0.ffn_up', [K, 512], 3));
    expect(Math.abs(mm.mean)).toBeLessThan(0.01 / Math.sqrt(K) * 10);
    expect(mm.std * Math.sqrt(K)).toBeCloseTo(1, 1);
    const emb = moments(randomTensor('token_embd', [64, 1000], 3));
    expect(emb.std).toBeCloseTo(1, 1);
    const norm = randomTensor('blk.0.attn_norm', [K], 3);
    expect(moments(norm).mean).toBeCloseTo(1, 1);
    for (const x of norm) expect(Math.abs(x - 1)).toBeLessThanOrEqual(0.1 * Math.sqrt(3) + 1e-6);
  });

  it('give a random llama logits that are neither flat nor explosive', () => {
    for (const seed of [1, 2, 3]) {
      const g = denseLlama({ vocab: 256, dim: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, ffn: 128 });
      const w = new RandomWeights(g.params, seed);
      const kv = new CpuKvCache(2, 2, 16, 128);
      const logits = interpret(g, w, kv, { tokens: Int32Array.of(5, 9, 200), positions: Int32Array.of(0, 1, 2) }).get(g.logits)!;
      const row = Float32Array.from(logits.subarray(2 * 256));
      const { std } = moments(row);
      expect(std).toBeGreaterThan(0.3);
      expect(std).toBeLessThan(10);
      const z = row.reduce((a, x) => a + Math.exp(x - Math.max(...row)), 0);
      expect(1 / z).toBeLessThan(0.9); // the top token does not take everything
    }
  });

  it('validate shapes and names with clear errors', () => {
    expect(() => new RandomWeights([{ name: 'a', shape: [2] }, { name: 'a', shape: [3] }], 1)).toThrow(/declared as \[2\] and \[3\]/);
    expect(() => new RandomWeights([{ name: 'a', shape: [0, 2] }], 1)).toThrow(WeightShapeError);
    expect(() => new RandomWeights([{ name: 'a', shape: [2, 2, 2, 2] }], 1)).toThrow(/1 to 3 positive integer dims/);
    expect(() => new RandomWeights([], 1.5)).toThrow(/integer seed/);
    expect(() => new RandomWeights([], 1).get('nope')).toThrow(/no parameter named nope/);
    const params = [{ name: 'a', shape: [2, 3] }];
    expect(() => validateWeights(params, { get: () => new Float32Array(5) })).toThrow(/expected 6 values/);
    expect(() => validateWeights(params, new RandomWeights(params, 1))).not.toThrow();
  });
});
