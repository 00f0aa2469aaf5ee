// Mutated example specs for specFuzz.test.ts: config and kv_cache values replaced by
// sizes from 0 to 2^53, negatives and fractions; and structural edits (long sums, deep
// parentheses and unary minus runs, MLP-only and attention-only layers, 1 or 500 layers).
// Every mutation is a text edit of a real example, so most of a mutated spec is valid
// and the edit reaches the checks behind the parser.
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parseInfer } from '../../dsl/index.ts';

export interface Spec {
  readonly name: string;
  readonly text: string;
  /** What was done, for the failure report. */
  readonly edits: readonly string[];
  /** A structure this large may take longer than the ordinary time bound (still bounded). */
  readonly large: boolean;
}

export const EXAMPLES: readonly Spec[] = readdirSync('examples').filter((f) => f.endsWith('.infer')).sort()
  .map((f) => ({ name: `examples/${f}`, text: readFileSync(`examples/${f}`, 'utf8'), edits: [], large: false }));

/** Small examples: the ones a one-token run on both engines can afford. */
export const SMALL_EXAMPLES = EXAMPLES.filter((e) => /tiny|draft/.test(e.name));

/** Number spellings: powers of two up to 2^53, edges, zero, negatives, fractions. */
export const numberText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 53 }).map((k) => String(2 ** k)) },
  { weight: 2, arbitrary: fc.constantFrom('0', '-1', '-64', '0.5', '2.5', '1e9', '1e12', '1e15', '4294967296', '65536', '257', '512', '513', '1025', '3') },
  { weight: 2, arbitrary: fc.integer({ min: -4, max: 600 }).map(String) },
  { weight: 1, arbitrary: fc.double({ min: -1e4, max: 1e4, noNaN: true, noDefaultInfinity: true }).map((d) => String(Math.abs(d) < 1e-6 ? 0 : d)) },
);

/** Small positive sizes only: mutations a run can afford. */
export const smallNumberText: fc.Arbitrary<string> = fc.constantFrom('1', '2', '3', '4', '8', '16', '24', '32', '48', '64', '96', '128');

function replaceAt(s: Spec, offset: number, length: number, text: string, what: string): Spec {
  return { ...s, text: s.text.slice(0, offset) + text + s.text.slice(offset + length), edits: [...s.edits, what] };
}

/** Replaces the value of config constant or kv_cache entry `index` (mod their count) with `value`. */
export function setValue(s: Spec, index: number, value: string): Spec {
  const ast = parseInfer(s.text, s.name).ast;
  if (!ast) return s;
  const entries = [
    ...ast.config.map((c) => ({ name: c.name, loc: c.value.loc })),
    ...(ast.kvCache ?? []).filter((e) => e.key === 'window').map((e) => ({ name: 'kv_cache.window', loc: e.value.loc })),
  ];
  if (!entries.length) return s;
  const e = entries[index % entries.length];
  const out = replaceAt(s, e.loc.offset, e.loc.length, value, `${e.name} = ${value}`);
  return e.name === 'layers' && Number(value) > 100 ? { ...out, large: true } : out;
}

/** Replaces the `return` expression of the layer with `f(old)`. */
function editReturn(s: Spec, what: string, f: (old: string) => string): Spec {
  const m = /^(\s*return )(.*)$/m.exec(s.text);
  if (!m) return s;
  const at = m.index + m[1].length;
  return replaceAt(s, at, m[2].length, f(m[2]), what);
}

const dropLines = (s: Spec, what: string, drop: RegExp): Spec => ({
  ...s, text: s.text.split('\n').filter((l) => !drop.test(l)).join('\n'), edits: [...s.edits, what],
});

/** The layer without attention: no q/k/v, no cache, no positions. */
export const mlpOnly = (s: Spec): Spec => dropLines(s, 'MLP only', /attn_|^\s*[qkv] = |attention\(/);

/** The layer without its feed-forward (dense or MoE): attention and the residual only. */
export function attentionOnly(s: Spec): Spec {
  const t = editReturn(s, 'attention only', () => 'x');
  return { ...dropLines(t, '', /ffn_|^\s*r = topk|^\s*h = rmsnorm\(x, ffn/), edits: t.edits };
}

export const setLayers = (s: Spec, n: number): Spec => {
  const m = /\blayers = (\d+)/.exec(s.text);
  return m ? { ...replaceAt(s, m.index, m[0].length, `layers = ${n}`, `layers = ${n}`), large: s.large || n > 100 } : s;
};

/** `return R` becomes `return R + x * c1 + ... + x * cN`. */
export const longSum = (s: Spec, n: number): Spec =>
  ({ ...editReturn(s, `sum of ${n} terms`, (old) => `${old} + ${Array.from({ length: n }, (_, i) => `x * ${((i % 9) + 1) / 64}`).join(' + ')}`), large: s.large || n > 500 });

export const deepParens = (s: Spec, d: number): Spec => editReturn(s, `${d} parentheses`, (old) => `${'('.repeat(d)}${old}${')'.repeat(d)}`);

/** An even number of minuses keeps the value; any number tests the nesting cap. */
export const minusRun = (s: Spec, d: number): Spec => editReturn(s, `${d} unary minuses`, (old) => `${'-'.repeat(d)}(${old})`);

type Edit = (s: Spec) => Spec;

const structural = (big: boolean): fc.Arbitrary<Edit> => fc.oneof(
  fc.constant(mlpOnly),
  fc.constant(attentionOnly),
  fc.constant((s: Spec) => setLayers(s, 1)),
  fc.integer({ min: 1, max: big ? 200 : 20 }).map((n): Edit => (s) => longSum(s, n)),
  fc.integer({ min: 1, max: big ? 100 : 40 }).map((d): Edit => (s) => deepParens(s, d)),
  fc.integer({ min: 1, max: big ? 100 : 8 }).map((d): Edit => (s) => minusRun(s, 2 * Math.ceil(d / 2))),
  ...(big ? [
    // The largest structures the limits allow: rarely, each costs seconds.
    fc.constant((s: Spec) => setLayers(s, 500)),
    fc.constant((s: Spec) => longSum(s, 5000)),
  ] : []),
);

const valueEdit = (numbers: fc.Arbitrary<string>): fc.Arbitrary<Edit> =>
  fc.tuple(fc.nat(), numbers).map(([i, v]): Edit => (s) => setValue(s, i, v));

/** Any mutation: 0-3 edits, values anywhere in 0..2^53 and structures up to 500 layers. */
export const anySpec: fc.Arbitrary<Spec> = fc.tuple(
  fc.constantFrom(...EXAMPLES),
  fc.array(fc.oneof({ weight: 3, arbitrary: valueEdit(numberText) }, { weight: 2, arbitrary: structural(false) }), { maxLength: 3 }),
  fc.oneof({ weight: 1, arbitrary: structural(true) }, { weight: 20, arbitrary: fc.constant(null) }),
).map(([s, edits, big]) => [...edits, ...(big ? [big] : [])].reduce((acc, e) => e(acc), s));

/** Mutations of the small examples a one-token run on both engines can afford. */
export const smallSpec: fc.Arbitrary<Spec> = fc.tuple(
  fc.constantFrom(...SMALL_EXAMPLES),
  fc.array(fc.oneof(valueEdit(smallNumberText), structural(false)), { maxLength: 2 }),
).map(([s, edits]) => edits.reduce((acc, e) => e(acc), s));
