// The language's size limits (compiler/limits.ts): each is reported by check at the
// config line or declaration that causes it, fast (before the layer body is unrolled),
// and the largest structures the limits allow (500 layers, 5000-term sums) compile.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { activationTooLarge, LIMITS } from '../../compiler/limits.ts';
import { GraphBuilder } from '../../compiler/ir/graph.ts';
import { ShapeError } from '../../compiler/ir/shapes.ts';
import { formatDiagnostics } from '../../dsl/index.ts';

const LLAMA = readFileSync('examples/tiny-llama.infer', 'utf8');
const MIXTRAL = readFileSync('examples/tiny-mixtral.infer', 'utf8');
const WINDOW = readFileSync('examples/tiny-window.infer', 'utf8');

/** `line:col` of the first occurrence of `needle` in `text`. */
function at(text: string, needle: string): string {
  const i = text.indexOf(needle);
  if (i < 0) throw new Error(`no '${needle}' in the spec`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${before[before.length - 1].length + 1}`;
}

function edit(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`no '${from}' in the spec`);
  return text.replace(from, to);
}

/** Compiles and returns `line:col message` per diagnostic, and the time it took. */
function check(text: string): { diags: string[]; ms: number; ok: boolean } {
  const t0 = performance.now();
  const c = compileSpec(text, 'limits.infer');
  return { diags: c.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`), ms: performance.now() - t0, ok: c.program !== null };
}

describe('config limits, at the config line, before unrolling', () => {
  const cases: [string, string, string, string, RegExp][] = [
    ['layers = 1e9', LLAMA, 'layers = 2', 'layers = 1e9', /config 'layers' is 1000000000, over the limit of 1024/],
    ['layers = 100000', LLAMA, 'layers = 2', 'layers = 100000', /'layers' is 100000, over the limit/],
    ['dim = 1e12', LLAMA, 'dim = 64', 'dim = 1e12', /config 'dim' is 1000000000000, over the limit of 65536/],
    ['vocab = 1e9', LLAMA, 'vocab = 256', 'vocab = 1e9', /config 'vocab' is 1000000000, over the limit of 2\^24/],
    ['heads = 4096', LLAMA, 'heads = 4; kv_heads = 2', 'heads = 4096; kv_heads = 2', /config 'heads' is 4096, over the limit of 1024/],
    ['head_dim = 512', LLAMA, 'head_dim = dim / heads', 'head_dim = 512', /config 'head_dim' is 512, over the limit of 256 \(the WebGPU attention/],
    ['max_context = 2^53', LLAMA, 'max_context = 512', 'max_context = 9007199254740992', /config 'max_context' is 9007199254740992, over the limit of 2\^20/],
    ['experts = 1e6', MIXTRAL, 'experts = 8', 'experts = 1e6', /config 'experts' is 1000000, over the limit of 1024/],
    ['top_k = 100', MIXTRAL, 'experts = 8; top_k = 2', 'experts = 128; top_k = 100', /config 'top_k' is 100, over the limit of 64/],
  ];
  for (const [name, spec, from, to, message] of cases) {
    it(name, () => {
      const text = edit(spec, from, to);
      const r = check(text);
      expect(r.ok).toBe(false);
      const line = r.diags.find((d) => message.test(d));
      expect(line, r.diags.join('\n')).toBeDefined();
      // The entry that holds the value (head_dim and top_k are the entries themselves).
      const entry = to.startsWith('experts = 128') ? 'top_k = 100' : to.split(';')[0];
      expect(line!.split(' ')[0]).toBe(at(text, entry));
      expect(r.ms).toBeLessThan(1000);
    });
  }

  it('kv_cache window = 1e12 at the window entry, for both backends alike', () => {
    const text = edit(WINDOW, 'window = 64', 'window = 1e12');
    const r = check(text);
    expect(r.diags).toEqual([`${at(text, 'window = 1e12')} kv_cache window 1000000000000 is over the limit of 2^20 (the longest context)`]);
  });

  it("attention's window argument", () => {
    const text = edit(LLAMA, 'cache(k, v), causal)', 'cache(k, v), causal, window = 1e12)');
    expect(check(text).diags).toEqual([`${at(text, '1e12)')} window 1000000000000 is over the limit of 2^20 (the longest context)`]);
  });
});

describe('tensor limits', () => {
  it('dim = 65536 with head_dim = dim / heads is refused at head_dim; with ffn = dim, at the param', () => {
    const wide = edit(LLAMA, 'dim = 64', 'dim = 65536');
    expect(check(wide).diags).toEqual([`${at(wide, 'head_dim = dim / heads')} config 'head_dim' is 16384, over the limit of 256 (the WebGPU attention kernel's widest head)`]);
    const text = edit(edit(wide, 'head_dim = dim / heads', 'head_dim = 128'), 'ffn = 172', 'ffn = dim');
    const r = check(text);
    expect(r.diags[0]).toBe(`${at(text, '[dim, ffn]')} parameter 'ffn_gate' [65536, 65536] has 4294967296 elements (16.0 GiB as f32), over the limit of 2^30 elements (4 GiB) per tensor`);
    expect(r.ms).toBeLessThan(1000);
  });

  it('per-tensor elements: reported at the param shape', () => {
    // [64, 2^24] is exactly 2^30 elements: allowed (compiling allocates nothing); one more column is not.
    expect(check(edit(LLAMA, 'ffn = 172', 'ffn = 16777216')).diags).toEqual([]);
    const over = edit(LLAMA, 'ffn = 172', 'ffn = 16777217');
    expect(check(over).diags[0]).toBe(`${at(over, '[dim, ffn]')} parameter 'ffn_gate' has an axis of 16777217, over the limit of 2^24 per axis`);
    const elems = edit(edit(LLAMA, 'ffn = 172', 'ffn = 16777216'), 'dim = 64', 'dim = 128').replace('head_dim = dim / heads', 'head_dim = 32');
    expect(check(elems).diags[0]).toBe(`${at(elems, '[dim, ffn]')} parameter 'ffn_gate' [128, 16777216] has 2147483648 elements (8.0 GiB as f32), over the limit of 2^30 elements (4 GiB) per tensor`);
  });

  it('an axis over 2^24', () => {
    const text = edit(LLAMA, 'ffn = 172', 'ffn = 1099511627776');
    expect(check(text).diags[0]).toBe(`${at(text, '[dim, ffn]')} parameter 'ffn_gate' has an axis of 1099511627776, over the limit of 2^24 per axis`);
  });

  it('total params over 2^38 elements, at the layers line', () => {
    // 1024 layers of two [16384, 16384] matrices: 2^38 + 2^29 elements.
    const text = edit(edit(LLAMA, 'layers = 2', 'layers = 1024'), 'ffn = 172', 'ffn = 16384; big = 16384').replace('ffn_gate: [dim, ffn]', 'ffn_gate: [big, ffn]').replace('ffn_up: [dim, ffn]', 'ffn_up: [big, ffn]');
    const r = check(text);
    expect(r.diags.find((d) => d.includes('the params total'))).toMatch(new RegExp(`^${at(text, 'layers = 1024')} the params total \\d+ elements .* over the limit of 2\\^38 elements`));
    expect(r.ms).toBeLessThan(1000);
  });

  // Params within their limits keep every activation within its own (the widest, the
  // attention scores [T, heads, max_context], is 2^30 at most), so this is a safety net
  // the graph builder applies to every node it types.
  it('an activation row over 2^30 elements is a shape error', () => {
    expect(activationTooLarge(['T', 1024, 1 << 20])).toBeNull();
    expect(activationTooLarge(['T', 2048, 1 << 20])).toBe('the result [T, 2048, 1048576] has 2147483648 elements per token (8.0 GiB as f32), over the limit of 2^30 elements (4 GiB) per tensor');
    expect(activationTooLarge([2 ** 25])).toBe('the result has an axis of 33554432, over the limit of 2^24 per axis');
    const b = new GraphBuilder();
    const p = b.param('w', [1 << 12, 1 << 12]);
    expect(() => b.node('reshape', { shape: ['T', 1 << 12, 1 << 12, 1 << 12] }, [p])).toThrow(ShapeError);
  });

  it('limits are what the docs say', () => {
    expect(LIMITS.layers).toBeGreaterThanOrEqual(512);
    expect(LIMITS.headDim).toBe(256);
  });
});

describe('deep and long structures', () => {
  it('500 layers compile', () => {
    const r = check(edit(LLAMA, 'layers = 2', 'layers = 500'));
    expect(r.diags).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.ms).toBeLessThan(20_000);
  });

  it('a 5000-term sum in the layer body compiles', () => {
    const sum = Array.from({ length: 5000 }, (_, i) => `x * ${(i % 7) + 1}`).join(' + ');
    const r = check(edit(LLAMA, 'return x + (silu', `return ${sum} + (silu`));
    expect(r.diags).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.ms).toBeLessThan(20_000);
  });

  it('a 20000-term config expression evaluates', () => {
    const r = check(edit(LLAMA, 'eos = 2', `eos = 2; zz = ${Array(20000).fill('1').join(' + ')}`));
    expect(r.diags).toEqual([]);
  });

  it("deep nesting is refused at the token that goes too deep: brackets, unary '-', member chains", () => {
    const deep = (inner: string) => edit(LLAMA, 'return x + (silu', `return x + ${inner} + (silu`);
    const parens = deep(`${'('.repeat(5000)}x${')'.repeat(5000)}`);
    // The model's and the layer's braces count too: the 63rd '(' is level 65.
    const p = at(parens, '('.repeat(5000)).split(':').map(Number);
    expect(check(parens).diags).toEqual([`${p[0]}:${p[1] + 62} brackets nested more than 64 levels deep`]);
    const minus = deep(`${'-'.repeat(5000)}x`);
    const m = at(minus, '-'.repeat(5000)).split(':').map(Number);
    expect(check(minus).diags).toEqual([`${m[0]}:${m[1] + 64} unary '-' nested more than 64 levels deep`]);
    const member = deep(`x${'.a'.repeat(5000)}`);
    expect(check(member).diags[0]).toMatch(/member accesses nested more than 64 levels deep/);
    // 60 levels are fine.
    expect(check(deep(`${'('.repeat(60)}x${')'.repeat(60)}`)).diags).toEqual([]);
    expect(check(deep(`${'- '.repeat(60)}x`)).diags).toEqual([]);
  });
});

describe('text', () => {
  it('a UTF-8 byte-order mark is ignored, and columns on line 1 stay as editors show them', () => {
    expect(check('\uFEFF' + LLAMA).diags).toEqual([]);
    const bad = '\uFEFFmodel M { $ }';
    const c = compileSpec(bad, 'bom.infer');
    expect(c.diagnostics.map((d) => `${d.line}:${d.col}`)).toEqual(['1:11']);
    expect(formatDiagnostics(c.diagnostics, bad).split('\n').slice(1)).toEqual(['model M { $ }', '          ^']);
  });
});
