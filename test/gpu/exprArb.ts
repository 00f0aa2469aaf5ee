// Random elementwise expressions for the GPU tests, and the pieces to check them:
// the same expression as an IR graph (for the interpreter) and an f32 emulation that
// tells well-conditioned cases from ones f32 itself cannot evaluate to a tolerance.
import fc from 'fast-check';
import { BINARY_FNS, BINARY_MEANING, UNARY_FNS, UNARY_MEANING, type GraphBuilder, type Node } from '../../compiler/ir/index.ts';
import type { ElementwiseExpr } from '../../program/kernels.ts';

/**
 * Expressions of depth <= 4 over `inputs` inputs using every unary and binary function.
 * Domains are kept valid by construction: sqrt and the divisor of div take exp(e), which
 * is positive and as accurate in f32 as e is. The root always reads an input.
 */
export function exprArb(inputs: number): fc.Arbitrary<ElementwiseExpr> {
  const input = fc.integer({ min: 0, max: inputs - 1 }).map((index): ElementwiseExpr => ({ kind: 'input', index }));
  const { e } = fc.letrec<{ e: ElementwiseExpr }>((tie) => ({
    e: fc.oneof({ maxDepth: 3, depthIdentifier: 'expr' },
      input,
      fc.integer({ min: -128, max: 128 }).map((i): ElementwiseExpr => ({ kind: 'const', value: i / 64 })),
      fc.record({ fn: fc.constantFrom(...UNARY_FNS), arg: tie('e') }).map(({ fn, arg }): ElementwiseExpr =>
        fn === 'sqrt' ? { kind: 'unary', fn, arg: { kind: 'unary', fn: 'exp', arg } } : { kind: 'unary', fn, arg }),
      fc.record({ fn: fc.constantFrom(...BINARY_FNS), left: tie('e'), right: tie('e') }).map(({ fn, left, right }): ElementwiseExpr =>
        fn === 'div' ? { kind: 'binary', fn, left, right: { kind: 'unary', fn: 'exp', arg: right } } : { kind: 'binary', fn, left, right }),
    ),
  }));
  return fc.record({ fn: fc.constantFrom(...BINARY_FNS.filter((f) => f !== 'div')), left: e, right: input })
    .map(({ fn, left, right }): ElementwiseExpr => ({ kind: 'binary', fn, left, right }));
}

/** The expression as IR nodes (constants as `const`, input i from `input(i)`). */
export function graphOfExpr(e: ElementwiseExpr, b: GraphBuilder, input: (i: number) => Node): Node {
  switch (e.kind) {
    case 'input': return input(e.index);
    case 'const': return b.constant(e.value);
    case 'unary': return b.node('unary', { fn: e.fn }, [graphOfExpr(e.arg, b, input)]);
    case 'binary': return b.node('binary', { fn: e.fn }, [graphOfExpr(e.left, b, input), graphOfExpr(e.right, b, input)]);
  }
}

function evaluate(e: ElementwiseExpr, x: (i: number) => number, round: (v: number) => number): number {
  switch (e.kind) {
    case 'input': return x(e.index);
    case 'const': return round(e.value);
    case 'unary': return round(UNARY_MEANING[e.fn](evaluate(e.arg, x, round)));
    case 'binary': return round(BINARY_MEANING[e.fn](evaluate(e.left, x, round), evaluate(e.right, x, round)));
  }
}

/**
 * True when rounding every intermediate to f32 keeps each element within tol * (|ref| + 1)
 * of the float64 value and finite exactly where f32 can be: otherwise no correct f32
 * kernel could pass, and the case says nothing about the kernel.
 */
export function f32Conditioned(e: ElementwiseExpr, ins: Record<string, Float32Array>, n: number, tol: number): boolean {
  for (let i = 0; i < n; i++) {
    const x = (k: number) => ins[`in${k}`][i];
    const ref = evaluate(e, x, (v) => v);
    const f32 = evaluate(e, x, Math.fround);
    if (!Number.isFinite(ref) || !Number.isFinite(f32)) return false;
    if (!(Math.abs(f32 - ref) <= tol * 0.1 * (Math.abs(ref) + 1))) return false;
  }
  return true;
}
