// The Program contract's single definitions: the KV page address tiles every page exactly,
// every binding's element type agrees with the buffer the schedule binds to it, and the
// backend registry's declared kernel kinds are exactly what each renderer renders.
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BACKENDS } from '../../backends/registry.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { parseNoFuse } from '../../compiler/pipeline.ts';
import { bindingElementType, bindingNames, type KernelKind } from '../../program/kernels.ts';
import { hasScales, kvRowWord, kvScaleWord, pageWords, rowWords, type KvStorage } from '../../program/kv.ts';
import type { Program } from '../../program/program.ts';

const storageArb: fc.Arbitrary<KvStorage> = fc.record({
  kvHeads: fc.integer({ min: 1, max: 8 }), headDim: fc.integer({ min: 1, max: 40 }).map((d) => 2 * d),
  pageSize: fc.integer({ min: 1, max: 32 }), dtype: fc.constantFrom('f32', 'f16', 'int8', 'int4' as const),
});

describe('the KV page address (program/kv.ts)', () => {
  it('rows and scales of every (head, slot) of a page cover its words exactly once, inside the page', () => {
    fc.assert(fc.property(storageArb, fc.integer({ min: 0, max: 5 }), (s, page) => {
      const words = pageWords(s), rw = rowWords(s);
      const owner = new Int32Array(words).fill(-1);
      const claim = (w: number, who: number) => {
        const local = w - page * words;
        expect(local).toBeGreaterThanOrEqual(0);
        expect(local).toBeLessThan(words);
        expect(owner[local]).toBe(-1);
        owner[local] = who;
      };
      for (let h = 0; h < s.kvHeads; h++) for (let slot = 0; slot < s.pageSize; slot++) {
        const who = h * s.pageSize + slot;
        for (let i = 0; i < rw; i++) claim(kvRowWord(s, page, h, slot) + i, who);
        if (hasScales(s.dtype)) claim(kvScaleWord(s, page, h, slot), who);
      }
      expect(owner.every((o) => o >= 0)).toBe(true);
    }));
  });
});

const EXAMPLES = readdirSync('examples').filter((f) => f.endsWith('.infer'));
const programs: [string, Program][] = EXAMPLES.flatMap((f) => {
  const c = compileSpec(readFileSync(`examples/${f}`, 'utf8'), `examples/${f}`);
  const unfused = compileSpec(readFileSync(`examples/${f}`, 'utf8'), `examples/${f}`, { noFuse: parseNoFuse('all') });
  return [[f, c.program!], [`${f} (unfused)`, unfused.program!]].filter(([, p]) => p) as [string, Program][];
});

describe('bindings', () => {
  it('compiles the examples (fused and unfused) it checks', () => {
    expect(programs.length).toBeGreaterThanOrEqual(EXAMPLES.length);
  });

  it("every step binds a buffer whose dtype stores the binding's element type", () => {
    const stores = { i32: ['i32'], u32: ['u32', 'q8_0', 'q4_0'], f32: ['f32'] } as const;
    for (const [name, p] of programs) {
      const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
      const buffers = new Map(p.buffers.map((b) => [b.name, b]));
      for (const step of p.steps) {
        const spec = specs.get(step.kernel)!;
        for (const b of bindingNames(spec)) {
          const buf = buffers.get(step.args[b]);
          expect(buf, `${name}: ${step.label} binds ${b}`).toBeDefined();
          expect(stores[bindingElementType(spec, b)] as readonly string[], `${name}: ${step.label} ${b} -> ${buf!.name} (${buf!.dtype})`).toContain(buf!.dtype);
        }
      }
    }
  });
});

describe('backend registry', () => {
  it('each backend renders exactly the kinds it declares', async () => {
    const byKind = new Map<KernelKind, Program['kernels'][number]['spec']>();
    for (const [, p] of programs) for (const k of p.kernels) if (!byKind.has(k.spec.kind)) byKind.set(k.spec.kind, k.spec);
    // The examples (fused and unfused) use 13 of the 14 kinds (attention_merge needs a context over 1024).
    expect(byKind.size).toBeGreaterThanOrEqual(13);
    for (const entry of BACKENDS) {
      const backend = await entry.load();
      for (const [kind, spec] of byKind) {
        const renders = (() => { try { return backend.render(`k_${kind}`, spec).length > 0; } catch { return false; } })();
        expect(renders, `${entry.name} ${kind}`).toBe(entry.kinds.has(kind));
      }
    }
  });
});
