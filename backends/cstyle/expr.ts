// Shared C-style rendering of elementwise expressions. WGSL and CUDA differ only
// in a small dialect table (literals, declarations, selection); the formulas for
// each unary/binary function live here once, written to match UNARY_MEANING and
// BINARY_MEANING in compiler/ir/ops.ts term for term, so every backend computes
// what the interpreter computes (up to f32 rounding).
import type { BinaryFn, UnaryFn } from '../../program/kernels.ts';
import type { ElementwiseExpr } from '../../program/kernels.ts';
import { floatText } from './literal.ts';

export interface CDialect {
  /** A float literal of the kernel's element type. */
  float(x: number): string;
  /** An immutable local: `let v = e;` (WGSL) or `const float v = e;` (CUDA). */
  declare(name: string, value: string): string;
  /** `c ? a : b` in the target's syntax. */
  select(cond: string, a: string, b: string): string;
  /** `x` limited to [lo, hi]. */
  clamp(x: string, lo: string, hi: string): string;
  /** Function names of the target's math library. */
  readonly fn: { readonly exp: string; readonly tanh: string; readonly sqrt: string };
  /**
   * Bound on tanh's argument, or null. Some GPU tanh implementations compute
   * (e^2x - 1)/(e^2x + 1) and return NaN once e^2x overflows; tanh(+-15) is
   * already +-1 in f32, so clamping there changes no f32 result.
   */
  readonly tanhClamp: number | null;
}

/** A WGSL-style dialect (abstract float literals that the context rounds to f32). */
export const WGSL_DIALECT: CDialect = {
  float: (x) => floatText(x),
  declare: (name, value) => `let ${name} = ${value};`,
  select: (c, a, b) => `select(${b}, ${a}, ${c})`,
  clamp: (x, lo, hi) => `clamp(${x}, ${lo}, ${hi})`,
  fn: { exp: 'exp', tanh: 'tanh', sqrt: 'sqrt' },
  tanhClamp: 15,
};

/** A CUDA-style dialect (float literals carry the `f` suffix, or C promotes to double). */
export const CUDA_DIALECT: CDialect = {
  float: (x) => floatText(x, 'f'),
  declare: (name, value) => `const float ${name} = ${value};`,
  select: (c, a, b) => `((${c}) ? (${a}) : (${b}))`,
  clamp: (x, lo, hi) => `fminf(fmaxf(${x}, ${lo}), ${hi})`,
  fn: { exp: 'expf', tanh: 'tanhf', sqrt: 'sqrtf' },
  tanhClamp: 15,
};

/**
 * The formula of a unary function applied to `x`, which must be a simple name or
 * literal (it may appear several times). Works on vectors too where the target
 * broadcasts scalars (WGSL `1.0 + vec4`), which the matmul prologues rely on.
 */
export function unaryFormula(fn: UnaryFn, x: string, d: CDialect): string {
  const f = (v: number) => d.float(v);
  const tanh = (a: string) => d.tanhClamp === null ? `${d.fn.tanh}(${a})`
    : `${d.fn.tanh}(${d.clamp(a, f(-d.tanhClamp), f(d.tanhClamp))})`;
  switch (fn) {
    case 'silu': return `(${x} / (${f(1)} + ${d.fn.exp}(-${x})))`;
    case 'gelu': return `(${f(0.5)} * ${x} * (${f(1)} + ${tanh(`${f(0.7978845608028654)} * (${x} + ${f(0.044715)} * ${x} * ${x} * ${x})`)}))`;
    case 'relu': return d.select(`${x} > ${f(0)}`, x, f(0));
    case 'exp': return `${d.fn.exp}(${x})`;
    case 'neg': return `(-${x})`;
    case 'sigmoid': return `(${f(1)} / (${f(1)} + ${d.fn.exp}(-${x})))`;
    case 'tanh': return tanh(x);
    case 'sqrt': return `${d.fn.sqrt}(${x})`;
  }
}

export function binaryFormula(fn: BinaryFn, a: string, b: string): string {
  const op = { add: '+', sub: '-', mul: '*', div: '/' }[fn];
  return `(${a} ${op} ${b})`;
}

export interface RenderedExpr {
  /** Declarations, one per interior node, in evaluation order. */
  readonly lines: string[];
  /** The name or literal holding the result. */
  readonly result: string;
}

/**
 * Renders an expression as a list of single-assignment locals (`v0`, `v1`, ...), so a
 * formula that repeats its argument (gelu uses x four times) never duplicates a
 * subtree: text stays linear in the expression's size. Identical subtrees are rendered
 * once. `input(i, period)` gives the source text that reads input i (e.g. `in0[i]`; with a
 * period, the input repeats along each token's row: `in0[e % period]`).
 */
export function renderExpr(expr: ElementwiseExpr, d: CDialect, input: (index: number, period?: number, perToken?: boolean) => string, prefix = 'v'): RenderedExpr {
  const lines: string[] = [];
  const seen = new Map<string, string>();
  const visit = (e: ElementwiseExpr): string => {
    if (e.kind === 'const') return d.float(e.value);
    const key = JSON.stringify(e);
    const known = seen.get(key);
    if (known) return known;
    let value: string;
    if (e.kind === 'input') {
      if (!Number.isInteger(e.index) || e.index < 0) throw new Error(`bad input index ${e.index}`);
      if (e.period !== undefined && !(Number.isInteger(e.period) && e.period > 0)) throw new Error(`bad input period ${e.period}`);
      value = input(e.index, e.period, e.perToken === true);
    } else if (e.kind === 'unary') value = unaryFormula(e.fn, visit(e.arg), d);
    else value = binaryFormula(e.fn, visit(e.left), visit(e.right));
    const name = `${prefix}${lines.length}`;
    lines.push(d.declare(name, value));
    seen.set(key, name);
    return name;
  };
  const result = visit(expr);
  return { lines, result };
}

/** The largest input index an expression reads, plus one. */
export function inputCount(expr: ElementwiseExpr): number {
  switch (expr.kind) {
    case 'input': return expr.index + 1;
    case 'const': return 0;
    case 'unary': return inputCount(expr.arg);
    case 'binary': return Math.max(inputCount(expr.left), inputCount(expr.right));
  }
}
