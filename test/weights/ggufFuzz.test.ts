// Mutated GGUF files: valid llama files written by the fixtures, then one header field
// changed (tensor or metadata count, a string or array length, a tensor's dims, type
// or offset) or one llama.* metadata value replaced (block_count = 1e9, context_length
// = 2^31, embedding_length = 0 or 2^40, head counts that do not divide, ...). For each,
// reading the header, `infer import` (importGguf + compiling the spec it writes) and
// loading the weights must finish within TIME_MS and grow the process by under
// MEMORY_BYTES, and either succeed or throw an Error whose message is one line that
// names the file and a byte offset, a metadata key or a tensor. Cases come from
// fast-check's suite seed (test/setup.ts; INFER_TEST_SEED explores others).
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { IMPORT_CONTEXT_CAP, importGguf } from '../../cli/importSpec.ts';
import type { ParamInfo } from '../../program/model.ts';
import { GgufFile, GgufWeights } from '../../runtime/weights/gguf.ts';
import type { GgufValue } from '../../runtime/weights/ggufTypes.ts';
import { writeGguf, type GgufLayout } from '../../runtime/weights/ggufWriter.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';

const TIME_MS = 2000;
const MEMORY_BYTES = 200 * 2 ** 20;
const RUNS = Number(process.env.INFER_FUZZ_RUNS ?? 60);

const dir = mkdtempSync(join(tmpdir(), 'infer-ggufFuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

interface Base { file: string; bytes: Uint8Array; layout: GgufLayout; params: readonly ParamInfo[] }

function base(m: GgufLlama): Base {
  const file = join(dir, `base${n++}.gguf`);
  const layout = writeLlamaGguf(file, m);
  const c = compileSpec(importGguf(file), 'base.infer');
  expect(c.diagnostics).toEqual([]);
  return { file, bytes: new Uint8Array(readFileSync(file)), layout, params: c.program!.params };
}

const BASES = [
  base({ vocab: 272, dim: 16, layers: 2, heads: 4, kvHeads: 2, ffn: 24, type: 'f32', tied: false, seed: 3, ctx: 64 }),
  base({ vocab: 264, dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'q8_0', tied: true, seed: 4 }),
  base({ vocab: 264, dim: 32, layers: 1, heads: 2, kvHeads: 2, ffn: 32, type: 'q4_0', tied: false, seed: 5, experts: 3, expertsUsed: 2 }),
];

/** Byte offset of metadata entry `key` (its u64 length prefix). */
function keyAt(bytes: Uint8Array, key: string): number {
  const k = new TextEncoder().encode(key);
  for (let i = 24; i < bytes.length - k.length; i++) {
    if (bytes[i] === k.length && bytes[i + 1] === 0 && k.every((c, j) => bytes[i + 8 + j] === c)) return i;
  }
  throw new Error(`no key ${key}`);
}

/** One step of the pipeline: succeeds, or throws an Error with a clear one-line message. */
function expectClearError(e: unknown, file: string, what: string): void {
  expect(e, `${what}: throws an Error`).toBeInstanceOf(Error);
  const msg = (e as Error).message;
  expect(msg.includes('\n'), `${what}: one line: ${msg}`).toBe(false);
  expect(msg.startsWith(`${file}: `), `${what}: names the file: ${msg}`).toBe(true);
  expect(msg, `${what}: names a byte offset, a metadata key or a tensor`).toMatch(/: byte \d+: |'[a-z_]+(\.[a-z_]+)+'|tensors? "?[\w.]+|architecture/);
}

/** Header, import (+ compile) and load of `file`, within the time and memory bounds. */
function run(file: string, fallback: readonly ParamInfo[]): { header: boolean; imported: string | null; loaded: boolean } {
  global.gc?.();
  const rss0 = process.memoryUsage().rss, t0 = performance.now();
  const out = { header: false, imported: null as string | null, loaded: false };
  try { GgufFile.open(file).close(); out.header = true; } catch (e) { expectClearError(e, file, 'reading the header'); }
  let params = fallback;
  if (out.header) {
    try { out.imported = importGguf(file); } catch (e) { expectClearError(e, file, 'importing'); }
    if (out.imported !== null) {
      const c = compileSpec(out.imported, 'imported.infer');
      expect(c.diagnostics.map((d) => d.message), 'an imported spec compiles').toEqual([]);
      params = c.program!.params;
    }
    try { GgufWeights.load(file, params).release(); out.loaded = true; } catch (e) { expectClearError(e, file, 'loading the weights'); }
  }
  const ms = performance.now() - t0, grown = process.memoryUsage().rss - rss0;
  expect(ms, `${file}: took ${ms.toFixed(0)} ms`).toBeLessThan(TIME_MS);
  expect(grown, `${file}: grew ${(grown / 2 ** 20).toFixed(0)} MiB`).toBeLessThan(MEMORY_BYTES);
  return out;
}

const write = (bytes: Uint8Array): string => {
  const file = join(dir, `m${n++}.gguf`);
  writeFileSync(file, bytes);
  return file;
};

/** u64 values a mutated count, length, dim or offset takes: near the truth, small, or huge. */
const u64Arb = (truth: number): fc.Arbitrary<bigint> => fc.oneof(
  fc.integer({ min: -3, max: 3 }).map((d) => BigInt(Math.max(0, truth + d))),
  fc.integer({ min: 0, max: 4096 }).map(BigInt),
  fc.constantFrom(2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 40n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n),
);

type Field = { at: number; truth: number; bits: 32 | 64; what: string };

/** The header fields a mutation may hit, with their offsets and true values. */
function fields(b: Base): Field[] {
  const dv = new DataView(b.bytes.buffer);
  const u64 = (at: number, what: string): Field => ({ at, truth: Number(dv.getBigUint64(at, true)), bits: 64, what });
  const out: Field[] = [u64(8, 'tensor count'), u64(16, 'metadata count')];
  for (const key of ['general.architecture', 'llama.block_count', 'tokenizer.ggml.tokens', 'tokenizer.ggml.scores']) {
    const at = keyAt(b.bytes, key);
    out.push(u64(at, `length of key ${key}`));
    const valueAt = at + 8 + key.length + 4;
    if (key === 'general.architecture') out.push(u64(valueAt, 'length of the architecture string'));
    if (key.startsWith('tokenizer')) out.push(u64(valueAt + 4, `length of array ${key}`));
  }
  // The first token's string length, inside the tokens array.
  out.push(u64(keyAt(b.bytes, 'tokenizer.ggml.tokens') + 8 + 'tokenizer.ggml.tokens'.length + 4 + 4 + 8, 'length of token 0'));
  for (const t of b.layout.tensors) {
    out.push(u64(t.infoOffset, `length of tensor name ${t.name}`));
    out.push({ at: t.dimsOffset - 4, truth: dv.getUint32(t.dimsOffset - 4, true), bits: 32, what: `n_dims of ${t.name}` });
    out.push(u64(t.dimsOffset, `dim 0 of ${t.name}`));
    out.push({ at: t.typeOffset, truth: dv.getUint32(t.typeOffset, true), bits: 32, what: `type of ${t.name}` });
    out.push(u64(t.offsetOffset, `offset of ${t.name}`));
  }
  return out;
}

describe('mutated GGUF files: read, import and load stay bounded and fail clearly', () => {
  it('the unmutated files import and load', () => {
    for (const b of BASES) expect(run(b.file, b.params)).toEqual({ header: true, imported: expect.any(String), loaded: true });
  });

  it('one header field (count, string or array length, dims, type, offset) set to another value', () => {
    const cases = fc.integer({ min: 0, max: BASES.length - 1 }).chain((i) => {
      const fs = fields(BASES[i]);
      return fc.tuple(fc.constant(i), fc.integer({ min: 0, max: fs.length - 1 }).chain((f) => fc.tuple(fc.constant(f), fs[f].bits === 64 ? u64Arb(fs[f].truth) : fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(2 ** 31, 2 ** 32 - 1)).map(BigInt))));
    });
    fc.assert(fc.property(cases, ([i, [f, value]]) => {
      const b = BASES[i], field = fields(b)[f];
      const bytes = Uint8Array.from(b.bytes), dv = new DataView(bytes.buffer);
      if (field.bits === 64) dv.setBigUint64(field.at, value, true); else dv.setUint32(field.at, Number(value), true);
      run(write(bytes), b.params);
    }), { numRuns: RUNS * 2 });
  });

  /** The base's metadata and tensors rewritten with `key` set to `value` (or removed). */
  const rewrite = (b: Base, key: string, value: GgufValue | null): string => {
    const g = GgufFile.open(b.file);
    try {
      const meta = [...g.metadata].filter(([k]) => k !== key);
      if (value !== null) meta.push([key, value]);
      const file = join(dir, `v${n++}.gguf`);
      writeGguf(file, meta, g.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.type.name, raw: g.readRaw(t) })));
      return file;
    } finally { g.close(); }
  };
  const KEYS = [
    'llama.block_count', 'llama.context_length', 'llama.embedding_length', 'llama.feed_forward_length',
    'llama.attention.head_count', 'llama.attention.head_count_kv', 'llama.attention.key_length', 'llama.attention.value_length',
    'llama.rope.dimension_count', 'llama.expert_count', 'llama.expert_used_count', 'tokenizer.ggml.eos_token_id',
    'llama.rope.freq_base', 'llama.attention.layer_norm_rms_epsilon', 'general.alignment',
  ];
  const NUMBERS = [0, 1, 2, 3, 5, 7, 12, 24, 1e9, 2 ** 31, 2 ** 32 - 1, 2 ** 40, 2 ** 53 + 2, -1, 0.5, 1e-30, NaN, Infinity];
  const valueArb: fc.Arbitrary<GgufValue | null> = fc.oneof(
    fc.tuple(fc.constantFrom(...NUMBERS), fc.constantFrom('u32', 'i32', 'u64', 'i64', 'f32', 'f64') as fc.Arbitrary<'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64'>).map(([v, type]): GgufValue => {
      if (type === 'u64') return { type, value: Number.isInteger(v) ? BigInt.asUintN(64, BigInt(v)) : 0n };
      if (type === 'i64') return { type, value: Number.isInteger(v) ? BigInt.asIntN(64, BigInt(v)) : 0n };
      if (type === 'u32') return { type, value: Number.isInteger(v) ? v >>> 0 : 0 };
      if (type === 'i32') return { type, value: Number.isInteger(v) ? v | 0 : 0 };
      return { type, value: v };
    }),
    fc.constantFrom<GgufValue | null>(null, { type: 'string', value: '8' }, { type: 'bool', value: true }, { type: 'array', itemType: 'u32', value: Uint32Array.of(2, 2) }),
  );

  it('one llama.* metadata value replaced (absurd, zero, non-dividing, wrong type) or removed', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: BASES.length - 1 }), fc.constantFrom(...KEYS), valueArb, (i, key, value) => {
      const b = BASES[i];
      run(rewrite(b, key, value), b.params);
    }), { numRuns: RUNS * 2 });
  });

  it('the reported cases: block_count 1e9 and 2^32 - 1, context_length 2^31, embedding_length 0 and 2^40, head counts that do not divide', () => {
    const b = BASES[0];
    const refused = (key: string, value: GgufValue, re: RegExp) => {
      const file = rewrite(b, key, value);
      expect(run(file, b.params).imported, `${key} = ${String(value.value)}`).toBeNull();
      expect(() => importGguf(file)).toThrow(re);
    };
    refused('llama.block_count', { type: 'u32', value: 1e9 }, /'llama.block_count' is 1000000000, but the file has 21 tensors and a layer needs 9/);
    refused('llama.block_count', { type: 'u64', value: 2n ** 32n - 1n }, /'llama.block_count' is 4294967295/);
    refused('llama.block_count', { type: 'u32', value: 3 }, /'llama.block_count' is 3, but the file has 21 tensors and a layer needs 9/);
    refused('llama.embedding_length', { type: 'u32', value: 0 }, /'llama.embedding_length' must be at least 1, got 0/);
    refused('llama.embedding_length', { type: 'u64', value: 2n ** 40n }, /'llama.embedding_length' is 1099511627776, but token_embd.weight has dims \[16, 272\]/);
    refused('llama.attention.head_count', { type: 'u32', value: 6 }, /'llama.embedding_length' \(16\) is not a multiple of 'llama.attention.head_count' \(6\)/);
    refused('llama.attention.head_count_kv', { type: 'u32', value: 3 }, /'llama.attention.head_count' \(4\) is not a multiple of 'llama.attention.head_count_kv' \(3\)/);
    refused('llama.attention.head_count_kv', { type: 'u32', value: 1 }, /with 'llama.attention.head_count_kv' \(1\) and the head size 4, blk.0.attn_k.weight would be \[16, 4\], but the file's has dims \[16, 8\]/);
    refused('llama.feed_forward_length', { type: 'u32', value: 2 ** 31 }, /with 'llama.feed_forward_length' \(2147483648\), blk.0.ffn_gate.weight would be \[16, 2147483648\], but the file's has dims \[16, 24\]/);
    // A context past the cap imports capped, with a note in the spec.
    const big = rewrite(b, 'llama.context_length', { type: 'u32', value: 2 ** 31 });
    const spec = run(big, b.params).imported!;
    expect(spec).toMatch(new RegExp(`max_context = ${IMPORT_CONTEXT_CAP}\\b`));
    expect(spec).toContain(`# Note: 'llama.context_length' is 2147483648: max_context capped at ${IMPORT_CONTEXT_CAP}`);
    const notes: string[] = [];
    expect(importGguf(big, { maxContext: 4096, onNote: (s) => notes.push(s) })).toMatch(/max_context = 4096\b/);
    expect(notes).toEqual([]);
    importGguf(big, { onNote: (s) => notes.push(s) });
    expect(notes).toEqual([`${big}: 'llama.context_length' is 2147483648: max_context capped at ${IMPORT_CONTEXT_CAP} (infer import --max-context N for another)`]);
  });
});
