// The MoE constructs in the DSL: the example parses and lowers; the block body
// parses across lines; every misuse gets one diagnostic at the right line:col.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';

const EXAMPLE = readFileSync(new URL('../../examples/tiny-mixtral.infer', import.meta.url), 'utf8');
const ROUTE = 'r = topk(softmax(h @ ffn_gate_inp), k = top_k)';
const BODY = 'moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down }';

function edit(from: string, to: string): string {
  expect(EXAMPLE.split(from).length, `snippet '${from}' must occur once`).toBe(2);
  return EXAMPLE.replace(from, to);
}

function pos(text: string, needle: string, shift = 0): string {
  const at = text.indexOf(needle);
  expect(at).toBeGreaterThanOrEqual(0);
  const before = text.slice(0, at + shift).split('\n');
  return `${before.length}:${before[before.length - 1].length + 1}`;
}

function errorOf(text: string): string {
  const r = compileSpec(text, 'spec.infer');
  expect(r.program).toBeNull();
  expect(r.diagnostics.length).toBeGreaterThanOrEqual(1);
  const d = r.diagnostics[0];
  return `${d.line}:${d.col}: ${d.message}`;
}

describe('moe in the DSL', () => {
  it('the example compiles, and a body over several lines means the same', () => {
    const a = compileSpec(EXAMPLE, 'tiny-mixtral.infer');
    expect(a.diagnostics).toEqual([]);
    const b = compileSpec(edit(BODY, 'moe(h, r, experts) {\n      e =>\n        (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down\n    }'), 'x.infer');
    expect(b.diagnostics).toEqual([]);
    expect(b.program!.steps.length).toBe(a.program!.steps.length);
  });

  it('reports misuse at the offending text', () => {
    let t = edit(BODY, 'moe(h, r, experts) { e => (silu(h @ e.ffn_gaet) * (h @ e.ffn_up)) @ e.ffn_down }');
    expect(errorOf(t)).toBe(`${pos(t, 'e.ffn_gaet')}: expert 'e' has no weight 'ffn_gaet': declare ffn_gaet_exps: [in, out, experts] in the layer params; did you mean 'ffn_gate_exps'?`);
    t = edit(BODY, 'moe(h, r, experts)');
    expect(errorOf(t)).toMatch(new RegExp(`^${pos(t, 'moe(h, r')}: moe needs an expert body`));
    t = edit(ROUTE, 'r = topk(softmax(h @ ffn_gate_inp), k = 9)');
    expect(errorOf(t)).toBe(`${pos(t, '9)')}: k must be an integer in 1..8 (the experts), got 9`);
    t = edit(ROUTE, 'r = topk(softmax(h @ ffn_gate_inp), k = top_k, renorm = maybe)');
    expect(errorOf(t)).toBe(`${pos(t, 'maybe')}: unknown name 'maybe'`);
    t = edit(ROUTE, 'r = softmax(h @ ffn_gate_inp)');
    expect(errorOf(t)).toBe(`${pos(t, 'r, experts')}: moe's second argument must be a routing from topk(...), got a tensor [T, 8]`);
    t = edit(BODY, 'moe(h, r, 4) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down }');
    expect(errorOf(t)).toBe(`${pos(t, '4)')}: the routing chooses among 8 experts, but moe was given 4`);
    t = edit(BODY, 'moe(h, r, experts) { e => h @ ffn_gate_inp }');
    expect(errorOf(t)).toMatch(new RegExp(`^${pos(t, 'h @ ffn_gate_inp }')}: the expert body must compute one row per expert`));
    t = edit(BODY, 'rmsnorm(h, ffn_norm) { e => h }');
    expect(errorOf(t)).toMatch(new RegExp(`^${pos(t, '{ e => h }')}: only moe takes a \\{ e => ... \\} body, not rmsnorm`));
    t = edit(ROUTE, 'r = topk(softmax(h @ ffn_gate_inp), k = top_k) + 1');
    expect(errorOf(t)).toMatch(/operand of '\+' must be a tensor, got a routing/);
    t = edit(BODY, 'moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_up }');
    expect(errorOf(t)).toMatch(/cannot multiply rows of 96 by expert weights \[64, 96, 8\]/);
    t = edit(BODY, 'moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down');
    expect(errorOf(t)).toMatch(/expected '}'|found/);
    t = edit('ffn_up_exps: [dim, ffn, experts]', 'ffn_up_exps: [dim, ffn, experts, 2]');
    expect(errorOf(t)).toMatch(/must be 1-D, 2-D or \(expert weights\) 3-D/);
  });
});
