// Safe number literals for generated C-like source. Every number that reaches a
// kernel goes through these, so a NaN, an infinity, a fraction where an integer
// belongs, or an f32 overflow is a render-time error instead of a shader that fails
// to compile (or, worse, compiles into something else: `1/2` is integer division).

export class LiteralError extends Error {}

/**
 * A finite float as source text that every C-like language reads as a floating
 * value: always with a decimal point or an exponent (`1` -> `1.0`, `1e-5` stays),
 * negative values in parentheses so `x - -1.5` can never become `x--1.5`.
 * The float64 text is kept: the target rounds it to f32 exactly once.
 */
export function floatText(x: number, suffix = ''): string {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new LiteralError(`not a finite float literal: ${String(x)}`);
  if (!Number.isFinite(Math.fround(x))) throw new LiteralError(`${x} overflows f32`);
  const neg = x < 0 || Object.is(x, -0);
  let s = String(Math.abs(x));
  if (!/[.e]/.test(s)) s += '.0';
  s += suffix;
  return neg ? `(-${s})` : s;
}

/** A non-negative integer below 2^32, for sizes, counts and strides. */
export function uintText(n: number, suffix = 'u'): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new LiteralError(`not a u32 literal: ${String(n)}`);
  return `${n}${suffix}`;
}

/** A signed integer that fits 32 bits, for offsets that may be negative. */
export function intText(n: number, suffix = ''): string {
  if (!Number.isInteger(n) || Math.abs(n) > 0x7fffffff) throw new LiteralError(`not an i32 literal: ${String(n)}`);
  return n < 0 ? `(${n}${suffix})` : `${n}${suffix}`;
}

/** A positive integer, checked; used by the backends to validate spec fields before rendering. */
export function positiveInt(what: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0 || n > 0x7fffffff) throw new LiteralError(`${what} must be a positive integer, got ${String(n)}`);
  return n;
}
