// Lowering: the example lowers to the same graph as the hand-built fixture, and
// each kind of semantic mistake gets one clear diagnostic at the right line:col.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuKvCache, interpret } from '../../compiler/ir/index.ts';
import { denseLlama } from '../fixtures/denseLlama.ts';
import { fixtureWeights } from '../fixtures/fixtureWeights.ts';

const EXAMPLE = readFileSync(new URL('../../examples/tiny-llama.infer', import.meta.url), 'utf8');

/** Replaces one exact, unique snippet of the example. */
function edit(from: string, to: string): string {
  expect(EXAMPLE.split(from).length, `snippet '${from}' must occur once`).toBe(2);
  return EXAMPLE.replace(from, to);
}

/** line:col of the n-th occurrence of `needle` in `text` (plus `shift` columns). */
function pos(text: string, needle: string, shift = 0, nth = 1): string {
  let at = -1;
  for (let i = 0; i < nth; i++) at = text.indexOf(needle, at + 1);
  expect(at).toBeGreaterThanOrEqual(0);
  const before = text.slice(0, at + shift).split('\n');
  return `${before.length}:${before[before.length - 1].length + 1}`;
}

function errorOf(text: string): string {
  const r = compileSpec(text, 'spec.infer');
  expect(r.program).toBeNull();
  expect(r.diagnostics).toHaveLength(1);
  const d = r.diagnostics[0];
  return `${d.line}:${d.col}: ${d.message}`;
}

describe('lowering the example', () => {
  it('computes exactly what the hand-built fixture graph computes', () => {
    const r = compileSpec(EXAMPLE, 'tiny-llama.infer', { noFuse: new Set(['norm', 'silu_mul', 'residual']) });
    expect(r.diagnostics).toEqual([]);
    const g = r.graph!;
    const f = denseLlama({ vocab: 256, dim: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, ffn: 172, maxContext: 512 });
    expect(g.params.map((p) => `${p.name}:${p.shape}`).sort()).toEqual(f.params.map((p) => `${p.name}:${p.shape}`).sort());
    expect(g.model).toMatchObject({ vocab: 256, heads: 4, kvHeads: 2, headDim: 16, maxContext: 512, eos: 2, weights: { binding: 'random', seed: 7 } });
    const w = fixtureWeights(f, 3);
    const step = { tokens: Int32Array.of(5, 9, 200), positions: Int32Array.of(0, 1, 2) };
    const a = interpret(g, w, new CpuKvCache(2, 2, 16, 512), step).get(g.logits)!;
    const b = interpret(f, w, new CpuKvCache(2, 2, 16, 512), step).get(f.logits)!;
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});

describe('semantic errors', () => {
  const cases: [string, () => [string, string, string]][] = [
    ['unknown function', () => { const t = edit('silu(h @ ffn_gate)', 'swish(h @ ffn_gate)'); return [t, pos(t, 'swish'), "unknown function 'swish'"]; }],
    ['unknown name with a suggestion', () => { const t = edit('h @ attn_q,', 'h @ attn_qq,'); return [t, pos(t, 'attn_qq'), "unknown name 'attn_qq'; did you mean 'attn_q'?"]; }],
    ['matmul shape mismatch', () => { const t = edit('ffn_down: [ffn, dim]', 'ffn_down: [dim, dim]'); return [t, pos(t, '@ ffn_down'), 'cannot multiply [T, 172] @ [64, 64]: inner dims 172 and 64 differ']; }],
    ['wrong arity', () => { const t = edit('rmsnorm(x, attn_norm, eps = norm_eps)', 'rmsnorm(x, eps = norm_eps)'); return [t, pos(t, 'rmsnorm(x, eps'), 'rmsnorm takes 2 arguments (x, weight, eps = norm_eps), got 1']; }],
    ['unknown named argument', () => { const t = edit('kv_heads, head_dim]), theta', 'kv_heads, head_dim]), angle'); return [t, pos(t, 'angle'), "rope has no argument 'angle'; it takes: theta"]; }],
    ['missing config', () => { const t = edit('vocab = 256; ', ''); return [t, pos(t, 'TinyLlama'), "missing config constant 'vocab'"]; }],
    ['duplicate parameter', () => { const t = edit('ffn_up: [dim, ffn]', 'ffn_up: [dim, ffn]; ffn_gate: [dim, ffn]'); return [t, pos(t, 'ffn_gate', 0, 2), "duplicate parameter 'ffn_gate'"]; }],
    ['reshape size mismatch', () => { const t = edit('[T, kv_heads, head_dim])\n    x', '[T, heads, head_dim])\n    x'); return [t, pos(t, 'reshape(h @ attn_v'), 'cannot reshape [T, 32] to [T, 4, 16]: sizes differ']; }],
    ['heads not a multiple of kv_heads', () => { const t = edit('kv_heads = 2', 'kv_heads = 3'); return [t, pos(t, 'kv_heads = 3'), 'heads (4) must be a multiple of kv_heads (3)']; }],
    ['layer result of the wrong shape', () => { const t = edit('-> [T, dim]', '-> [T, vocab]'); return [t, pos(t, 'x + (silu'), 'the layer result has shape [T, 64], but [T, 256] was declared']; }],
    ['residual of mismatched shapes', () => { const t = edit('ffn_down: [ffn, dim]', 'ffn_down: [ffn, vocab]'); return [t, pos(t, '+ (silu'), 'operand shapes [T, 64] and [T, 256] differ']; }],
    ['T outside a shape', () => { const t = edit('eps = norm_eps)\n    q', 'eps = T)\n    q'); return [t, pos(t, 'eps = T', 6), "'T' (the tokens of a step) can only appear in a shape"]; }],
    ['page larger than the context', () => { const t = edit('layout = contiguous', 'layout = paged(page = 1024)'); return [t, pos(t, 'kv_cache'), 'kv_cache page size 1024 is larger than max_context (512)']; }],
    ['cache outside a layer', () => { const t = edit('x = embed(tokens, token_embd)', 'x = embed(tokens, token_embd)\n  c = cache(x, x)'); return [t, pos(t, 'cache(x, x)'), 'cache(k, v) can only be used inside a layer']; }],
    ['logits of the wrong width', () => { const t = edit('output: [dim, vocab]', 'output: [dim, dim]'); return [t, pos(t, 'rmsnorm(x, output_norm'), 'logits has shape [T, 64], but [T, 256] was declared']; }],
    ['unknown weights binding', () => { const t = edit('random(seed = 7)', 'safetensor'); return [t, pos(t, 'safetensor'), "unknown weights binding 'safetensor'"]; }],
  ];
  for (const [name, make] of cases) {
    it(name, () => {
      const [text, where, message] = make();
      const got = errorOf(text);
      expect(got.startsWith(`${where}: `), got).toBe(true);
      expect(got).toContain(message);
    });
  }
});
