import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type Expr, type Model, evaluateConfig, parseInfer, resolveKvCache } from '../../dsl/index.ts';
import { EXAMPLE, wrap } from './example.ts';

function parseOk(text: string): Model {
  const r = parseInfer(text, 't.infer');
  expect(r.diagnostics).toEqual([]);
  expect(r.ast).not.toBeNull();
  return r.ast!;
}

/** Compact S-expression of an expression, for precedence assertions. */
function show(e: Expr): string {
  switch (e.kind) {
    case 'num': return e.text;
    case 'ident': return e.name;
    case 'neg': return `(neg ${show(e.arg)})`;
    case 'binary': return `(${e.op} ${show(e.left)} ${show(e.right)})`;
    case 'member': return `${show(e.object)}.${e.name}`;
    case 'list': return `[${e.items.map(show).join(' ')}]`;
    case 'call': return `${e.callee}(${[...e.args.map(show), ...e.named.map((n) => `${n.name}=${show(n.value)}`)].join(' ')})`;
  }
}

/** The value of the first model-level assignment. */
const firstValue = (body: string): Expr => {
  const s = parseOk(wrap(body)).statements[0];
  if (s.kind !== 'assign') throw new Error('expected an assignment');
  return s.value;
};

describe('the example model', () => {
  const m = parseOk(EXAMPLE);

  it('has the sections', () => {
    expect(m.name).toBe('TinyLlama');
    expect(m.nameLoc).toEqual({ line: 2, col: 7, endLine: 2, endCol: 15, offset: EXAMPLE.indexOf('TinyLlama'), length: 9 });
    expect(m.config.map((c) => c.name)).toEqual([
      'vocab', 'dim', 'layers', 'heads', 'kv_heads', 'head_dim', 'ffn', 'rope_theta', 'norm_eps', 'max_context', 'eos',
    ]);
    expect(m.kvCache?.map((e) => `${e.key}=${show(e.value)}`)).toEqual(['layout=contiguous', 'dtype=f32']);
    expect(m.weights?.binding).toBe('random');
    expect(m.weights?.args.map((a) => `${a.name}=${show(a.value)}`)).toEqual(['seed=7']);
    expect(m.weights?.args[0].loc).toMatchObject({ line: 9, col: 18, endCol: 25 });
    expect(m.params.map((p) => `${p.name}${show({ kind: 'list', items: p.shape, loc: p.shapeLoc })}`)).toEqual([
      'token_embd[dim vocab]', 'output_norm[dim]', 'output[dim vocab]',
    ]);
    expect(m.params[0].nameLoc).toMatchObject({ line: 11, col: 5, endCol: 14 });
    expect(m.sections.config).toMatchObject({ line: 3, col: 3, endLine: 7, endCol: 3 });
  });

  it('keeps model statements in order with the layer among them', () => {
    expect(m.statements.map((s) => (s.kind === 'layer' ? `layer ${s.name}` : s.target))).toEqual(['x', 'layer block', 'logits']);
    expect(m.logits).toBe(m.statements[2]);
    expect(m.logits.loc).toMatchObject({ line: 28, col: 3, endLine: 28, endCol: 59 });
    expect(show(m.logits.value)).toBe('(@ rmsnorm(x output_norm eps=norm_eps) output)');
    expect(show((m.statements[0] as { value: Expr }).value)).toBe('embed(tokens token_embd)');
  });

  it('describes the layer', () => {
    const l = m.layer!;
    expect(l).toBe(m.statements[1]);
    expect(l.loc).toMatchObject({ line: 16, col: 3, endLine: 27, endCol: 3 });
    expect(l.inputs.map((i) => `${i.name}:${i.shape.map(show).join(',')}`)).toEqual(['x:T,dim']);
    expect(l.output.map(show)).toEqual(['T', 'dim']);
    expect(l.params.map((p) => p.name)).toEqual([
      'attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down',
    ]);
    expect(l.params[1].shape.map(show)).toEqual(['dim', '(* heads head_dim)']);
    expect(l.params[5].nameLoc).toMatchObject({ line: 19, col: 14 });
    expect(l.body.map((s) => s.target)).toEqual(['h', 'q', 'k', 'v', 'x', 'h']);
    expect(show(l.body[1].value)).toBe('rope(reshape((@ h attn_q) [T heads head_dim]) theta=rope_theta)');
    expect(show(l.body[4].value)).toBe(
      '(+ x (@ reshape(attention(q cache(k v) causal) [T (* heads head_dim)]) attn_output))',
    );
    expect(show(l.result)).toBe('(+ x (@ (* silu((@ h ffn_gate)) (@ h ffn_up)) ffn_down))');
    expect(l.returnLoc).toMatchObject({ line: 26, col: 5, endCol: 61 });
  });

  it('evaluates config and kv_cache', () => {
    const { values, diagnostics } = evaluateConfig(m);
    expect(diagnostics).toEqual([]);
    expect(Object.fromEntries(values)).toEqual({
      vocab: 256, dim: 64, layers: 2, heads: 4, kv_heads: 2, head_dim: 16, ffn: 172,
      rope_theta: 10000, norm_eps: 1e-5, max_context: 512, eos: 2,
    });
    expect(resolveKvCache(m, values)).toEqual({ kv: { layout: 'contiguous', page: null, dtype: 'f32', window: null }, diagnostics: [] });
    expect(m.config[7].value).toMatchObject({ kind: 'num', value: 10000, text: '10000.0' });
  });

  it('matches examples/tiny-llama.infer', () => {
    const file = parseOk(readFileSync(new URL('../../examples/tiny-llama.infer', import.meta.url), 'utf8'));
    expect(Object.fromEntries(evaluateConfig(file).values)).toEqual(Object.fromEntries(evaluateConfig(m).values));
    const strip = (x: unknown): unknown =>
      JSON.parse(JSON.stringify(x, (k, v) => (k === 'loc' || k.endsWith('Loc') || k === 'file' || k === 'sections' ? undefined : v)));
    expect(strip(file)).toEqual(strip(m));
  });
});

describe('newlines and semicolons', () => {
  it('accepts either separator, blank lines and stray semicolons', () => {
    const m = parseOk('model M {;\n\n  config { a = 1; b = 2;; ;\n\n c = 3; }; x = 1; logits = x;\n\n}\n;\n');
    expect(m.config.map((c) => c.name)).toEqual(['a', 'b', 'c']);
    expect(m.statements.map((s) => s.kind === 'assign' && s.target)).toEqual(['x', 'logits']);
  });

  it('ignores newlines inside parentheses and brackets', () => {
    const m = parseOk('model M {\n  params { w: [\n    dim,\n    vocab\n  ]\n  b: [dim] }\n  logits = f(a,\n    b,\n    eps = 1\n  )\n}');
    expect(m.params.map((p) => p.shape.length)).toEqual([2, 1]);
    expect(show(m.logits.value)).toBe('f(a b eps=1)');
    expect(m.logits.loc).toMatchObject({ line: 7, col: 3, endLine: 10, endCol: 3 });
  });

  it('lets an opening brace sit on the next line', () => {
    const m = parseOk('model M\n{\n  config\n  {\n    a = 1\n  }\n  layer b (x: [T])\n  -> [T]\n  {\n    return x\n  }\n  logits = x\n}');
    expect(m.layer?.name).toBe('b');
  });

  it('continues an expression over lines only inside parentheses', () => {
    expect(show(firstValue('  x = (a +\n    b *\n    c)'))).toBe('(+ a (* b c))');
  });

  it('ends a statement at a newline otherwise', () => {
    const m = parseOk(wrap('  x = a\n  y = b'));
    expect(m.statements.map((s) => s.kind === 'assign' && show(s.value))).toEqual(['a', 'b', 'x']);
  });

  it('counts CRLF line endings as one line break', () => {
    const m = parseOk('model M {\r\n  config { a = 1 }\r\n  logits = x\r\n}\r\n');
    expect(m.logits.loc).toMatchObject({ line: 3, col: 3 });
  });
});

describe('expressions', () => {
  it.each([
    ['a + b @ c * d', '(+ a (* (@ b c) d))'],
    ['a - b - c', '(- (- a b) c)'],
    ['a / b % c @ d', '(@ (% (/ a b) c) d)'],
    ['-a @ b', '(@ (neg a) b)'],
    ['- -a', '(neg (neg a))'],
    ['a * (b + c)', '(* a (+ b c))'],
    ['-x.gate', '(neg x.gate)'],
    ['e.gate.up', 'e.gate.up'],
    ['f(a, b, name = c + 1)', 'f(a b name=(+ c 1))'],
    ['f()', 'f()'],
    ['g(x).w', 'g(x).w'],
    ['[a, b + 1, []]', '[a (+ b 1) []]'],
    ['attention(q, cache(k, v), causal)', 'attention(q cache(k v) causal)'],
    ['.5 + 2.5E+3 - 1e-5 + 7.', '(+ (- (+ .5 2.5E+3) 1e-5) 7.)'],
  ])('%s', (src, expected) => {
    expect(show(firstValue(`  x = ${src}`))).toBe(expected);
  });

  it('gives binary nodes spans covering their operands, parentheses included', () => {
    const e = firstValue('  x = (a + b) * c');
    expect(e).toMatchObject({ kind: 'binary', op: '*', loc: { line: 2, col: 7, endCol: 17, length: 11 }, opLoc: { col: 15 } });
    if (e.kind !== 'binary') throw new Error();
    expect(e.left.loc).toMatchObject({ col: 7, endCol: 13 });
  });

  it('reads number values', () => {
    expect(firstValue('  x = 2.5E+3')).toMatchObject({ kind: 'num', value: 2500, text: '2.5E+3' });
    expect(firstValue('  x = .5')).toMatchObject({ kind: 'num', value: 0.5 });
  });

  it('does not reserve names that merely start with a keyword', () => {
    const m = parseOk(wrap('  layers = 1; models = 2; returns = 3; configs = 4'));
    expect(m.statements.map((s) => s.kind === 'assign' && s.target)).toEqual(['layers', 'models', 'returns', 'configs', 'logits']);
  });
});

describe('kv_cache variants', () => {
  it('resolves paged, int8 and window using config constants', () => {
    const m = parseOk('model M {\n config { w = 4096 }\n kv_cache { layout = paged(page = 16); dtype = int8; window = w }\n weights gguf\n logits = x\n}');
    const { values } = evaluateConfig(m);
    expect(resolveKvCache(m, values).kv).toEqual({ layout: 'paged', page: 16, dtype: 'int8', window: 4096 });
    expect(m.weights).toMatchObject({ binding: 'gguf', args: [] });
  });
});
