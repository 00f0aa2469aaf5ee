// Activation memory planning (compiler/planMemory.ts), checked independently of the
// planner's own liveness code: from the Program's steps alone (bindingNames and
// writtenBindings), no buffer's value is ever overwritten, or bound alongside, another
// buffer sharing its storage between the step that writes it and its last read (or the
// end of the forward, for what the runtime reads back: logits and MoE routing). Over
// random dense llamas (fusions on and off, flash-decoding splits), random MoE models and
// random DAGs of matmuls, norms and elementwise ops. Also: activation memory does not
// grow with depth, and llama-20m's device bytes before and after.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { activationBytes } from '../../compiler/cost.ts';
import { GraphBuilder, type Graph, type Node } from '../../compiler/ir/index.ts';
import { FUSION_KEYS, runPipeline } from '../../compiler/pipeline.ts';
import { schedule } from '../../compiler/schedule.ts';
import { bindingNames, writtenBindings } from '../../program/kernels.ts';
import type { ModelInfo } from '../../program/model.ts';
import { bufferBytes, type Program, type Sizing } from '../../program/program.ts';
import { MoeRouting } from '../../runtime/runner/moeRouting.ts';
import { denseLlama, type LlamaShape } from '../fixtures/denseLlama.ts';
import { compileMoe, moeShapeArb } from '../fixtures/moeFixtures.ts';

/** Throws on the first clobber; returns how many buffers share storage with another. */
function checkPlan(p: Program): number {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  const decl = new Map(p.buffers.map((d) => [d.name, d]));
  const arenas = new Map(p.arenas.map((a) => [a.name, a]));
  const storageOf = (name: string): string => decl.get(name)?.storage ?? name;
  // Only per-token f32 activations (never the logits) may live in an arena big enough for them.
  for (const d of p.buffers) {
    if (d.storage === undefined) continue;
    expect(d.kind, d.name).toBe('activation');
    expect(d.name).not.toBe(p.logits);
    expect(arenas.get(d.storage)!.perToken, d.name).toBeGreaterThanOrEqual(d.perToken);
  }
  // Each step's reads and writes, from the kernel's binding list.
  const access = p.steps.map((s) => {
    const spec = specs.get(s.kernel)!;
    const written = new Set(writtenBindings(spec));
    const names = bindingNames(spec).filter((b) => s.args[b] !== undefined);
    return { reads: names.filter((b) => !written.has(b)).map((b) => s.args[b]), writes: names.filter((b) => written.has(b)).map((b) => s.args[b]) };
  });
  // A value must survive from its write to its last read; read-backs to the end (step N).
  const N = p.steps.length;
  const lastRead = new Map<string, number>();
  access.forEach((a, i) => a.reads.forEach((b) => lastRead.set(b, i)));
  const readBack = [p.logits];
  MoeRouting.forProgram(p)?.readbacks(1, (name) => { readBack.push(name); return { label: name, bytes: 0 }; });
  for (const b of readBack) lastRead.set(b, N);
  access.forEach((a, w) => {
    for (const b of a.writes) {
      const S = storageOf(b), end = lastRead.get(b) ?? w;
      // Nothing else in the writing step may touch the same storage (no in-place, no double binding).
      for (const other of [...a.reads, ...a.writes]) if (other !== b && storageOf(other) === S) throw new Error(`step ${w} (${p.steps[w].label}) writes ${b} and binds ${other}, both in ${S}`);
      // No later step up to the last read writes another buffer there.
      for (let j = w + 1; j <= Math.min(end, N - 1); j++) {
        for (const c of access[j].writes) if (c !== b && storageOf(c) === S) throw new Error(`${b} (written at step ${w}, read until ${end}) is overwritten by ${c} at step ${j} in ${S}`);
      }
    }
  });
  // Independently of writes: no step binds two different buffers of one storage.
  access.forEach((a, i) => {
    const seen = new Map<string, string>();
    for (const b of [...a.reads, ...a.writes]) {
      const prev = seen.get(storageOf(b));
      if (prev !== undefined && prev !== b) throw new Error(`step ${i} binds ${prev} and ${b}, which share ${storageOf(b)}`);
      seen.set(storageOf(b), b);
    }
  });
  return p.buffers.filter((d) => d.storage !== undefined).length;
}

const unplannedPerToken = (p: Program) => p.buffers.filter((d) => d.kind === 'activation').reduce((n, d) => n + d.perToken, 0);

const llamaArb = fc.record({
  kvHeads: fc.integer({ min: 1, max: 3 }), group: fc.integer({ min: 1, max: 3 }), headDim: fc.constantFrom(2, 4, 8),
  dim: fc.integer({ min: 4, max: 40 }), layers: fc.integer({ min: 1, max: 4 }), ffn: fc.integer({ min: 3, max: 64 }),
  vocab: fc.integer({ min: 5, max: 80 }), splits: fc.integer({ min: 1, max: 4 }),
  noFuse: fc.subarray([...FUSION_KEYS]),
}).map((r) => ({ shape: { ...r, heads: r.kvHeads * r.group, maxContext: 32 } as LlamaShape, splits: r.splits, noFuse: new Set(r.noFuse) }));

/** A random DAG: each new node reads earlier ones (any of them, so values stay live across many steps). */
const dagArb = fc.record({
  widths: fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 4 }),
  ops: fc.array(fc.record({ kind: fc.constantFrom('matmul', 'unary', 'binary', 'rmsnorm'), a: fc.nat(), b: fc.nat(), w: fc.nat() }), { minLength: 1, maxLength: 40 }),
  out: fc.nat(), vocab: fc.integer({ min: 2, max: 30 }),
});

type Dag = typeof dagArb extends fc.Arbitrary<infer D> ? D : never;

function dagGraph(r: Dag): Graph {
  const width = (x: Node) => x.shape.at(-1) as number;
  const model: ModelInfo = {
    name: 'Dag', vocab: r.vocab, dim: r.widths[0], layers: 1, heads: 1, kvHeads: 1, headDim: 4, maxContext: 16, eos: null,
    kv: { layout: { kind: 'contiguous' }, dtype: 'f32', window: null }, weights: { binding: 'random', seed: 1 }, constants: {},
  };
  const b = new GraphBuilder();
  const nodes: Node[] = [b.node('embed', {}, [b.tokens(), b.param('token_embd', [r.widths[0], r.vocab])])];
  r.ops.forEach((o, i) => {
    const x = nodes[o.a % nodes.length];
    const K = width(x);
    if (o.kind === 'matmul') nodes.push(b.node('matmul', {}, [x, b.param(`w${i}`, [K, r.widths[o.w % r.widths.length]])]));
    else if (o.kind === 'rmsnorm') nodes.push(b.node('rmsnorm', { eps: 1e-5 }, [x, b.param(`n${i}`, [K])]));
    else if (o.kind === 'unary') nodes.push(b.node('unary', { fn: 'silu' }, [x]));
    else {
      const same = nodes.filter((n) => width(n) === K);
      nodes.push(b.node('binary', { fn: 'add' }, [x, same[o.b % same.length]]));
    }
  });
  // The logits read any one node; nodes nothing reads are dropped or dead right after their write.
  const x = nodes[r.out % nodes.length];
  return b.finish(model, b.node('matmul', {}, [x, b.param('output', [width(x), r.vocab])]));
}

describe('planMemory: no buffer sharing storage is clobbered while live', () => {
  it('dense llamas, any fusions, flash-decoding splits', () => fc.assert(fc.property(llamaArb, ({ shape, splits, noFuse }) => {
    const g = runPipeline(denseLlama(shape), noFuse).graph;
    const p = schedule(g, [], { attentionSplits: splits });
    checkPlan(p);
    expect(activationBytes(p, 1)).toBeLessThanOrEqual(4 * unplannedPerToken(p));
  }), { numRuns: 150 }));

  it('MoE models, fused and dense', () => fc.assert(fc.property(moeShapeArb(16), fc.boolean(), (s, fuse) => {
    const { program } = compileMoe(s, fuse ? undefined : new Set(['moe']));
    checkPlan(program);
    // Every routing buffer read back after the forward keeps storage no later step writes.
    expect(MoeRouting.forProgram(program)).not.toBeNull();
  }), { numRuns: 80 }));

  it('random DAGs of matmuls, norms and elementwise ops', () => fc.assert(fc.property(dagArb, (r) => {
    checkPlan(schedule(dagGraph(r)));
  }), { numRuns: 300 }));

  it('the checker catches a plan that puts a step\'s input and output in one arena', () => {
    const p = schedule(denseLlama({ vocab: 16, dim: 8, layers: 2, heads: 2, kvHeads: 1, headDim: 4, ffn: 12 }));
    const step = p.steps.find((s) => s.args.x && s.args.out && p.buffers.find((d) => d.name === s.args.x)?.storage)!;
    const broken: Program = { ...p, buffers: p.buffers.map((d) => (d.name === step.args.out ? { ...d, storage: p.buffers.find((e) => e.name === step.args.x)!.storage } : d)) };
    expect(() => checkPlan(broken)).toThrow(/share|overwritten|binds/);
  });

  it('planMemory: false keeps a buffer per activation', () => {
    const p = schedule(denseLlama({ vocab: 16, dim: 8, layers: 2, heads: 2, kvHeads: 1, headDim: 4, ffn: 12 }), [], { planMemory: false });
    expect(p.arenas).toEqual([]);
    expect(p.buffers.every((d) => d.storage === undefined)).toBe(true);
    expect(activationBytes(p, 1)).toBe(4 * unplannedPerToken(p));
  });
});

describe('activation memory does not grow with depth', () => {
  const shape = { vocab: 64, dim: 32, heads: 4, kvHeads: 2, headDim: 8, ffn: 88, maxContext: 64 };
  it.each([['fused', new Set<string>()], ['unfused', new Set(FUSION_KEYS)]])('%s: 2 and 8 layers plan the same activation bytes', (_, noFuse) => {
    const bytes = (layers: number) => activationBytes(schedule(runPipeline(denseLlama({ ...shape, layers }), noFuse).graph), 64);
    expect(bytes(8)).toBe(bytes(2));
    expect(bytes(2)).toBeGreaterThan(0);
  });

  it('llama-20m at 2 and 8 layers; its device bytes before and after planning', () => {
    const text = readFileSync(new URL('../../examples/llama-20m.infer', import.meta.url), 'utf8');
    const compiled = (layers: number, planMemory = true) => {
      const c = compileSpec(text.replace(/layers = 6/, `layers = ${layers}`), 'llama-20m.infer', { planMemory });
      return c.program!;
    };
    expect(activationBytes(compiled(8), 1024)).toBe(activationBytes(compiled(2), 1024));
    // Device bytes as the runner allocates them at the default sizing (1024 tokens, one sequence's pages).
    const p = compiled(6), before = compiled(6, false);
    const sizing: Sizing = { maxTokens: 1024, pages: p.kv.pagesPerSequence, maxSeqs: p.kv.maxSequences };
    const total = (q: Program) => [...q.arenas, ...q.buffers.filter((d) => d.storage === undefined)].reduce((n, d) => n + bufferBytes(d, sizing), 0);
    console.log(`llama-20m device bytes: ${total(before)} unplanned, ${total(p)} planned; activations ${activationBytes(before, 1024)} -> ${activationBytes(p, 1024)}`);
    expect(total(p)).toBeLessThan(total(before) * 0.6);
  });
});
