// Lowering of expressions: evaluates an AST expression in an environment of
// config numbers, tensors (IR nodes) and shapes, building IR nodes through the
// GraphBuilder. Shape errors from the builder come back as LowerErrors located
// at the operator or call that caused them.
import type { BinaryExpr, CallExpr, Expr, Loc } from '../dsl/ast.ts';
import type { GraphBuilder, Node } from './ir/graph.ts';
import type { BinaryFn } from '../program/kernels.ts';
import type { Dim } from './ir/ops.ts';
import { ShapeError } from './ir/shapes.ts';
import { BUILTINS, type Scope, type Value } from './builtins.ts';
import { lowerMember } from './lowerMoe.ts';

export class LowerError extends Error {
  constructor(message: string, readonly loc: Loc) { super(message); }
}

export function describe(v: Value): string {
  switch (v.kind) {
    case 'tensor': return `a tensor [${v.node.shape.join(', ')}]`;
    case 'num': return `the number ${v.value}`;
    case 'shape': return `the shape [${v.dims.join(', ')}]`;
    case 'flag': return `the flag '${v.name}'`;
    case 'routing': return `a routing [${v.node.shape.join(', ')}] from topk`;
    case 'expert': return `the expert '${v.name}'`;
  }
}

/** Runs a builder call, turning shape errors into errors at `loc`. */
export function at<T>(loc: Loc, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ShapeError) throw new LowerError(e.message, loc);
    throw e;
  }
}

const ARITH: Record<string, BinaryFn | undefined> = { '+': 'add', '-': 'sub', '*': 'mul', '/': 'div' };

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

export function suggest(name: string, known: Iterable<string>): string {
  let best = '', bestD = Infinity;
  for (const k of known) { const d = editDistance(name, k); if (d < bestD) { best = k; bestD = d; } }
  return bestD <= Math.max(1, Math.floor(name.length / 3)) ? `; did you mean '${best}'?` : '';
}

export function lowerExpr(e: Expr, scope: Scope): Value {
  switch (e.kind) {
    case 'num': return { kind: 'num', value: e.value };
    case 'ident': {
      const v = scope.lookup(e.name);
      if (v) return v;
      if (e.name === 'T') throw new LowerError("'T' (the tokens of a step) can only appear in a shape such as [T, dim]", e.loc);
      throw new LowerError(`unknown name '${e.name}'${suggest(e.name, scope.names())}`, e.loc);
    }
    case 'neg': {
      const a = lowerExpr(e.arg, scope);
      if (a.kind === 'num') return { kind: 'num', value: -a.value };
      return { kind: 'tensor', node: at(e.loc, () => scope.b.node('unary', { fn: 'neg' }, [tensor(a, e.arg.loc, 'operand of unary -')])) };
    }
    case 'binary': return lowerBinary(e, scope);
    case 'call': return lowerCall(e, scope);
    case 'list': return { kind: 'shape', dims: e.items.map((item) => lowerDim(item, scope)) };
    case 'member': return lowerMember(lowerExpr(e.object, scope), e.name, e.loc, scope.names());
  }
}

export function tensor(v: Value, loc: Loc, what: string): Node {
  if (v.kind !== 'tensor') throw new LowerError(`${what} must be a tensor, got ${describe(v)}`, loc);
  return v.node;
}

export function lowerDim(e: Expr, scope: Scope): Dim {
  if (e.kind === 'ident' && e.name === 'T') return 'T';
  const v = lowerExpr(e, scope);
  if (v.kind !== 'num') throw new LowerError(`a dimension must be a number or T, got ${describe(v)}`, e.loc);
  if (!Number.isInteger(v.value) || v.value <= 0) throw new LowerError(`a dimension must be a positive integer, got ${v.value}`, e.loc);
  return v.value;
}

function constNode(b: GraphBuilder, value: number): Node { return b.constant(value); }

// `a + b + c + ...` parses left-deep, so a long sum is as deep as it is long:
// walk its left spine with a loop (the right operands are as shallow as the
// lexer's nesting cap allows) instead of recursing once per term.
function lowerBinary(top: BinaryExpr, scope: Scope): Value {
  const spine: BinaryExpr[] = [];
  let leftmost: Expr = top;
  for (; leftmost.kind === 'binary'; leftmost = leftmost.left) spine.push(leftmost);
  let acc = lowerExpr(leftmost, scope);
  for (let i = spine.length - 1; i >= 0; i--) acc = lowerBinaryStep(spine[i], acc, lowerExpr(spine[i].right, scope), scope);
  return acc;
}

function lowerBinaryStep(e: BinaryExpr, l: Value, r: Value, scope: Scope): Value {
  if (l.kind === 'num' && r.kind === 'num') {
    if ((e.op === '/' || e.op === '%') && r.value === 0) throw new LowerError('division by zero', e.opLoc);
    const v = e.op === '+' ? l.value + r.value : e.op === '-' ? l.value - r.value : e.op === '*' ? l.value * r.value
      : e.op === '/' ? l.value / r.value : e.op === '%' ? l.value % r.value : NaN;
    if (e.op === '@') throw new LowerError("'@' multiplies tensors, not numbers", e.opLoc);
    return { kind: 'num', value: v };
  }
  if (e.op === '@') {
    // A 3-D right operand is an expert weight (e.NAME): every expert's matmul at once.
    const op = r.kind === 'tensor' && r.node.shape.length === 3 ? 'expert_matmul' : 'matmul';
    const node = at(e.opLoc, () => scope.b.node(op, {}, [tensor(l, e.left.loc, "left operand of '@'"), tensor(r, e.right.loc, "right operand of '@'")]));
    return { kind: 'tensor', node };
  }
  const fn = ARITH[e.op];
  if (!fn) throw new LowerError(`'${e.op}' is only defined on numbers`, e.opLoc);
  const operand = (v: Value, loc: Loc) => (v.kind === 'num' ? constNode(scope.b, v.value) : tensor(v, loc, `operand of '${e.op}'`));
  return { kind: 'tensor', node: at(e.opLoc, () => scope.b.node('binary', { fn }, [operand(l, e.left.loc), operand(r, e.right.loc)])) };
}

function lowerCall(e: CallExpr, scope: Scope): Value {
  const fn = BUILTINS[e.callee];
  if (!fn) throw new LowerError(`unknown function '${e.callee}'${suggest(e.callee, Object.keys(BUILTINS))}`, e.calleeLoc);
  if (e.block && e.callee !== 'moe') throw new LowerError(`only moe takes a { ${e.block.param} => ... } body, not ${e.callee}`, e.block.loc);
  const [lo, hi] = fn.positional;
  if (e.args.length < lo || e.args.length > hi) {
    const want = lo === hi ? `${lo}` : `${lo} to ${hi}`;
    throw new LowerError(`${e.callee} takes ${want} argument${hi === 1 ? '' : 's'} (${fn.signature}), got ${e.args.length}`, e.loc);
  }
  const named = new Map<string, { value: Value; loc: Loc }>();
  for (const a of e.named) {
    if (!fn.named.includes(a.name)) {
      const known = fn.named.length ? `it takes: ${fn.named.join(', ')}` : 'it takes no named arguments';
      throw new LowerError(`${e.callee} has no argument '${a.name}'; ${known}`, a.loc);
    }
    if (named.has(a.name)) throw new LowerError(`argument '${a.name}' given twice`, a.loc);
    // true/false are words, not names: they read as flags where no such name is defined.
    const word = a.value.kind === 'ident' && (a.value.name === 'true' || a.value.name === 'false') && !scope.lookup(a.value.name);
    named.set(a.name, { value: word && a.value.kind === 'ident' ? { kind: 'flag', name: a.value.name } : lowerExpr(a.value, scope), loc: a.value.loc });
  }
  const args = e.args.map((a) => ({ value: fn.flags && a.kind === 'ident' && fn.flags.includes(a.name) && !scope.lookup(a.name)
    ? { kind: 'flag', name: a.name } as Value : lowerExpr(a, scope), loc: a.loc }));
  return fn.lower({ scope, call: e, args, named });
}
