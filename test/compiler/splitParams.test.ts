// Params over the buffer limits, split into column parts by the scheduler (compiler/splitParams.ts):
// under artificially low limits on small llamas, every buffer fits, the parts tile each
// param's columns exactly, each split op becomes one dispatch per part, and the cost model
// counts the same weight bytes as the unsplit program. Params that cannot be split are refused.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { decodeMinimumBytes, forwardCost, paramBytes } from '../../compiler/cost.ts';
import { columnParts, partBytes } from '../../compiler/splitParams.ts';
import { bufferBytes, bufferCap, WEBGPU_DEFAULT_LIMITS, type Program } from '../../program/program.ts';
import type { KernelSpec } from '../../program/kernels.ts';
import { llamaSpec } from '../fixtures/splitLlama.ts';

const SIZING = { maxTokens: 1, pages: 1, maxSeqs: 1 };
type MatmulSpec = Extract<KernelSpec, { kind: 'matmul' }>;
const params = (p: Program) => p.buffers.filter((b) => b.kind === 'param');

describe('column parts', () => {
  it('are the fewest that fit, as equal as possible, and tile the columns', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 20_000 }), (N, col, cap) => {
      const parts = columnParts(N, cap, (c) => c * col);
      if (col > cap) { expect(parts).toBeNull(); return; }
      expect(parts!.reduce((n, p) => (expect(p.first).toBe(n), n + p.count), 0)).toBe(N);
      for (const p of parts!) expect(p.count * col).toBeLessThanOrEqual(cap);
      const most = Math.floor(cap / col);
      expect(parts!.length).toBe(Math.ceil(N / Math.min(N, most)));
      // Equal parts but the last, which takes the remainder.
      for (const p of parts!.slice(0, -1)) expect(p.count).toBe(parts![0].count);
      expect(parts!.at(-1)!.count).toBeLessThanOrEqual(parts![0].count);
    }));
  });

  it('q4_0 parts of a [K, N] param cost its blocks (plus at most a padding word per part)', () => {
    expect(partBytes('q4_0', 64, 10)).toBe(10 * 2 * 18 + (20 % 2 ? 2 : 0));
    expect(partBytes('q8_0', 32, 3)).toBe(3 * 34 + 2);
  });
});

describe('split programs', () => {
  const shape = fc.record({
    vocab: fc.integer({ min: 260, max: 700 }), dim: fc.constantFrom(32, 64, 96), ffn: fc.constantFrom(32, 64, 96, 128),
    heads: fc.constantFrom(1, 2), layers: fc.integer({ min: 1, max: 2 }), tied: fc.boolean(),
    type: fc.constantFrom<'f32' | 'q8_0' | 'q4_0'>('f32', 'q8_0', 'q4_0'), frac: fc.double({ min: 0, max: 1, noNaN: true }),
  });

  it('fit every buffer, tile every param and keep weight bytes and dispatches exact', () => {
    fc.assert(fc.property(shape, (s) => {
      const { text, weightTypes } = llamaSpec(s);
      const whole = compileSpec(text, 's.infer', { weightTypes }).program!;
      // A cap between the widest column (one must fit) and the largest param: something splits.
      const sizes = params(whole).map((b) => bufferBytes(b, SIZING));
      const widestColumn = Math.max(4 * s.dim, 4 * s.ffn);
      const cap = Math.floor(widestColumn + s.frac * (Math.max(...sizes) - 1 - widestColumn));
      const limits = { maxBindingBytes: cap, maxBufferBytes: 2 * cap };
      const split = compileSpec(text, 's.infer', { weightTypes, limits }).program!;
      expect(split.limits).toEqual(limits);
      for (const b of params(split)) expect(bufferBytes(b, SIZING), b.name).toBeLessThanOrEqual(bufferCap(limits));
      // Each param: whole, or parts that tile its columns in order.
      let extraDispatches = 0;
      for (const p of split.params) {
        const parts = params(split).filter((b) => b.part?.of === p.name);
        const wholeBuf = params(split).find((b) => b.name === `param:${p.name}`);
        expect(Boolean(wholeBuf) !== (parts.length > 0), p.name).toBe(true);
        if (!parts.length) continue;
        expect(parts.length).toBeGreaterThan(1);
        const N = p.shape[1], K = p.shape[0];
        let next = 0;
        for (const b of parts) { expect(b.part!.first).toBe(next); expect(b.elements).toBe(K * b.part!.count); next += b.part!.count; }
        expect(next).toBe(N);
        const uses = split.steps.filter((st) => Object.values(st.args).includes(parts[0].name)).length;
        for (const b of parts) expect(split.steps.filter((st) => Object.values(st.args).includes(b.name)).length).toBe(uses);
        extraDispatches += uses * (parts.length - 1);
      }
      expect(extraDispatches).toBeGreaterThan(0);
      expect(split.steps.length).toBe(whole.steps.length + extraDispatches);
      // Cost: the same weights, read once per decode step; the analytic minimum unchanged.
      expect(paramBytes(split)).toBe(paramBytes(whole));
      expect(decodeMinimumBytes(split, 10)).toBe(decodeMinimumBytes(whole, 10));
      // Every output element is written once, split or not.
      const written = (p: Program, T: number) => forwardCost(p, T, T).steps.filter((c) => c.kind === 'matmul' || c.kind === 'embed').reduce((n, c) => n + c.bytesWritten, 0);
      expect(written(split, 3)).toBeCloseTo(written(whole, 3), 6);
      expect(forwardCost(split, 1, 1).dispatches).toBe(split.steps.length);
    }), { numRuns: 25 });
  });

  it('leave programs under the default limits unsplit', () => {
    const { text } = llamaSpec({ vocab: 300, dim: 64, ffn: 64, heads: 2, layers: 1, tied: true, type: 'f32' });
    const p = compileSpec(text, 's.infer').program!;
    expect(p.limits).toEqual(WEBGPU_DEFAULT_LIMITS);
    expect(params(p).every((b) => !b.part)).toBe(true);
  });

  // The families' epilogues over split weights: every part of a biased or soft-capped matmul
  // keeps the epilogue, reads the whole (unsplit) bias at its own columns (the kernel's
  // colOffset), and the parts tile the output columns.
  it('keep the bias and softcap epilogues in every part, with the whole bias bound', () => {
    for (const name of ['tiny-qwen2', 'tiny-gemma2']) {
      const p = compileSpec(readFileSync(`examples/${name}.infer`, 'utf8'), name, { limits: { maxBindingBytes: 8192, maxBufferBytes: 16384 } }).program!;
      const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
      const byNode = new Map<string, { spec: MatmulSpec; args: Record<string, string> }[]>();
      for (const st of p.steps) {
        const spec = specs.get(st.kernel)!;
        if (spec.kind !== 'matmul' || !(spec.bias || spec.softcap !== undefined)) continue;
        const node = st.label.split(' ')[0];
        byNode.set(node, [...(byNode.get(node) ?? []), { spec, args: st.args }]);
      }
      const split = [...byNode.values()].filter((parts) => parts.length > 1);
      expect(split.length, `${name}: a split matmul with an epilogue`).toBeGreaterThan(0);
      for (const parts of split) {
        let next = 0;
        for (const { spec, args } of parts) {
          expect(spec.colOffset).toBe(next);
          next += spec.N;
          expect([spec.bias, spec.softcap]).toEqual([parts[0].spec.bias, parts[0].spec.softcap]);
          if (spec.bias) expect(p.buffers.find((b) => b.name === args.bias)?.part, 'the bias is bound whole').toBeUndefined();
        }
        expect(next).toBe(parts[0].spec.outCols);
      }
    }
  });

  it('refuse a param they cannot split: one column over the limit', () => {
    const { text } = llamaSpec({ vocab: 300, dim: 64, ffn: 64, heads: 2, layers: 1, tied: true, type: 'f32' });
    expect(() => compileSpec(text, 's.infer', { limits: { maxBindingBytes: 200, maxBufferBytes: 200 } }))
      .toThrow(/parameter \S+ \[64, \d+\] needs [\d.]+ MiB as f32, over the device buffer limit of 0\.0 MiB, and (even one of its \d+ columns \(64 weights\) is over it|it is read by rmsnorm)/);
  });
});
