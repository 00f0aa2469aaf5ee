// Diagnostics of the constructs the model families added: each mistake in a spec is
// reported at its line and column with a message that says what is wrong (never a
// stack trace), from edits of the family examples.
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';

const GEMMA = readFileSync('examples/tiny-gemma2.infer', 'utf8');
const QWEN2 = readFileSync('examples/tiny-qwen2.infer', 'utf8');
const PHI3 = readFileSync('examples/tiny-phi3.infer', 'utf8');

/** line:col of the first occurrence of `needle` in `text`. */
function pos(text: string, needle: string): string {
  const at = text.indexOf(needle);
  expect(at, needle).toBeGreaterThanOrEqual(0);
  const before = text.slice(0, at).split('\n');
  return `${before.length}:${before[before.length - 1].length + 1}`;
}

function errorOf(text: string): string {
  const r = compileSpec(text, 'spec.infer');
  expect(r.program).toBeNull();
  const d = r.diagnostics[0];
  return `${d.line}:${d.col}: ${d.message}`;
}

const edit = (text: string, from: string, to: string) => { expect(text).toContain(from); return text.replace(from, to); };

it('a bias that does not end the shape it is added to', () => {
  const t = edit(QWEN2, 'attn_k_bias: [kv_heads * head_dim]', 'attn_k_bias: [heads * head_dim]');
  expect(errorOf(t)).toMatch(new RegExp(`^${pos(t, '+ attn_k_bias')}: operand shapes \\[T, 32\\] and \\[64\\] differ \\(a shape without T may repeat`));
});

it('neox must be true or false', () => {
  const t = edit(QWEN2, 'neox = true)\n    k', 'neox = 1)\n    k');
  expect(errorOf(t)).toMatch(new RegExp(`^${pos(t, '1)\n    k')}: expected true or false, got the number 1`));
});

it('a slice outside the last dim, and a fractional slice', () => {
  const t = edit(PHI3, 'slice(gu, ffn, ffn)', 'slice(gu, ffn, ffn + 1)');
  expect(errorOf(t)).toMatch(new RegExp(`^${pos(t, 'slice(gu, ffn, ffn + 1)')}: slice\\(start = 172, len = 173\\) is outside the last dim of \\[T, 344\\]`));
  const f = edit(PHI3, 'slice(gu, ffn, ffn)', 'slice(gu, ffn, 0.5)');
  expect(errorOf(f)).toMatch(new RegExp(`^${pos(f, '0.5)')}: slice's len must be an integer, got the number 0.5`));
});

it('softcap must be positive, in attention and as a function', () => {
  const a = edit(GEMMA, 'softcap = attn_softcap)', 'softcap = -1)');
  expect(errorOf(a)).toMatch(new RegExp(`^${pos(a, '-1)')}: softcap must be a positive number, got -1`));
  const f = edit(GEMMA, 'token_embd, final_softcap)', 'token_embd, 0)');
  expect(errorOf(f)).toMatch(new RegExp(`^${pos(f, '0)\n}')}: softcap's cap must be a positive number, got the number 0`));
});

it('a negative or fractional window; layer_index cannot be assigned or used outside a layer', () => {
  const w = edit(GEMMA, 'window = sliding_window * (1 - layer_index % 2)', 'window = sliding_window * (layer_index % 2 - 1)');
  expect(errorOf(w)).toMatch(new RegExp(`^${pos(w, 'sliding_window * (layer_index')}: window must be a non-negative integer \\(0: no window\\)`));
  const a = edit(GEMMA, '    h = rmsnorm(x, attn_norm', '    layer_index = 3\n    h = rmsnorm(x, attn_norm');
  expect(errorOf(a)).toMatch(new RegExp(`^${pos(a, 'layer_index = 3')}: 'layer_index' is built in and cannot be assigned`));
  const o = edit(GEMMA, 'x = embed(tokens, token_embd) * sqrt(dim)', 'x = embed(tokens, token_embd) * layer_index');
  expect(errorOf(o)).toMatch(new RegExp(`^${pos(o, 'layer_index\n')}: unknown name 'layer_index'`));
});

it('rmsnorm per head needs a weight of head_dim', () => {
  const t = edit(readFileSync('examples/tiny-qwen3.infer', 'utf8'), 'attn_q_norm: [head_dim]', 'attn_q_norm: [dim]');
  expect(errorOf(t)).toMatch(/rmsnorm weight length vs last dim of input: expected 24, got 64/);
});
