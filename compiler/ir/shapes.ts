// Shape and dtype rules for every op. Builders call `inferType` before creating a
// node, so an ill-shaped graph cannot be built; `verify` re-checks a finished graph.
import type { DType, Dim, Op, OpArgs, Shape } from './ops.ts';
import { isMoeOp, moeType } from './moe.ts';

/** Raised for an ill-typed op; lowering turns it into a diagnostic at the offending source. */
export class ShapeError extends Error {}

export interface Typed { readonly shape: Shape; readonly dtype: DType }

export const showShape = (s: Shape): string => `[${s.join(', ')}]`;

/** A fused per-head norm's weight: [D], D the head size it normalises. */
function expectNormWeight(op: string, w: Shape, d: Dim): void {
  if (!sameShape(w, [d])) throw new ShapeError(`${op}'s norm weight must be [${d}], got ${showShape(w)}`);
}
export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Elements per token (product of the non-T dims) and whether the leading dim is T. */
export function elementsPerToken(s: Shape): number {
  return s.reduce<number>((n, d) => (d === 'T' ? n : n * d), 1);
}

/** Whether `small` (no T) repeats over `big`'s leading dims: it is a proper suffix of `big`. */
export function broadcasts(small: Shape, big: Shape): boolean {
  if (small.length === 0 || small.length >= big.length || small.includes('T')) return false;
  const off = big.length - small.length;
  return small.every((d, i) => d === big[off + i]);
}

/** Whether `small` is one number per token ([T, 1], e.g. a gate) that repeats along each of `big`'s token rows. */
export function perTokenScalar(small: Shape, big: Shape): boolean {
  return small[0] === 'T' && big[0] === 'T' && elementsPerToken(small) === 1 && elementsPerToken(big) > 1;
}

function expectRank(what: string, s: Shape, rank: number): void {
  if (s.length !== rank) throw new ShapeError(`${what} must have rank ${rank}, got ${showShape(s)}`);
}

function expectDim(what: string, got: Dim, want: Dim): void {
  if (got !== want) throw new ShapeError(`${what}: expected ${want}, got ${got}`);
}

function expectF32(op: string, src: readonly Typed[]): void {
  for (const s of src) if (s.dtype !== 'f32') throw new ShapeError(`${op} takes f32 tensors, got ${s.dtype}`);
}

export function inferType<O extends Op>(op: O, arg: OpArgs[O], src: readonly Typed[]): Typed {
  switch (op) {
    case 'tokens': case 'positions': return { shape: ['T'], dtype: 'i32' };
    case 'const': return { shape: [], dtype: 'f32' };
    case 'param': throw new ShapeError('param nodes take their shape from the declaration');
    case 'embed': {
      const [ids, table] = src;
      if (ids.dtype !== 'i32') throw new ShapeError('embed takes token ids as its first argument');
      expectRank('embedding table', table.shape, 2);
      return { shape: [ids.shape[0], table.shape[0]], dtype: 'f32' };
    }
    case 'rmsnorm': {
      const [x, w] = src;
      expectF32('rmsnorm', src);
      expectRank('rmsnorm weight', w.shape, 1);
      expectDim('rmsnorm weight length vs last dim of input', w.shape[0], x.shape[x.shape.length - 1]);
      return { shape: x.shape, dtype: 'f32' };
    }
    case 'matmul': {
      const [x, w] = src;
      expectF32('@', src);
      expectRank('left operand of @', x.shape, 2);
      expectRank('right operand of @', w.shape, 2);
      if (x.shape[1] !== w.shape[0]) {
        throw new ShapeError(`cannot multiply ${showShape(x.shape)} @ ${showShape(w.shape)}: inner dims ${x.shape[1]} and ${w.shape[0]} differ`);
      }
      return { shape: [x.shape[0], w.shape[1]], dtype: 'f32' };
    }
    case 'reshape': {
      const [x] = src;
      const to = (arg as OpArgs['reshape']).shape;
      if (x.shape[0] !== to[0] || elementsPerToken(x.shape) !== elementsPerToken(to) || to.filter((d) => d === 'T').length !== 1) {
        throw new ShapeError(`cannot reshape ${showShape(x.shape)} to ${showShape(to)}: sizes differ`);
      }
      return { shape: to, dtype: x.dtype };
    }
    case 'rope': {
      const [x, pos] = src;
      expectRank('rope input', x.shape, 3);
      if (pos.dtype !== 'i32') throw new ShapeError('rope needs the positions vector');
      const d = x.shape[2];
      if (typeof d !== 'number' || d % 2 !== 0) throw new ShapeError(`rope needs an even head_dim, got ${d}`);
      if ((arg as OpArgs['rope']).norm !== undefined) expectNormWeight('rope', src[2].shape, d);
      return { shape: x.shape, dtype: 'f32' };
    }
    case 'kv_store': {
      const [k, v] = src;
      expectRank('cached k', k.shape, 3);
      if (!sameShape(k.shape, v.shape)) throw new ShapeError(`cache(k, v): k ${showShape(k.shape)} and v ${showShape(v.shape)} differ`);
      if ((arg as OpArgs['kv_store']).norm !== undefined) expectNormWeight('kv_store', src[3].shape, k.shape[2]);
      return { shape: [], dtype: 'cache' };
    }
    case 'attention': case 'attn_scores': {
      const [q, cache] = src;
      expectRank('attention query', q.shape, 3);
      if (cache.dtype !== 'cache') throw new ShapeError('attention reads a cache: attention(q, cache(k, v), causal)');
      if (op === 'attention') return { shape: q.shape, dtype: 'f32' };
      return { shape: [q.shape[0], q.shape[1], (arg as OpArgs['attn_scores']).context], dtype: 'f32' };
    }
    case 'attn_values': {
      const [p, cache] = src;
      expectRank('attention probabilities', p.shape, 3);
      if (cache.dtype !== 'cache') throw new ShapeError('attention values read a cache');
      return { shape: [p.shape[0], p.shape[1], (arg as OpArgs['attn_values']).headDim], dtype: 'f32' };
    }
    case 'slice': {
      const [x] = src;
      const { start, len } = arg as OpArgs['slice'];
      expectF32('slice', src);
      const n = x.shape[x.shape.length - 1];
      if (x.shape.length < 2 || typeof n !== 'number') throw new ShapeError(`slice takes a tensor [T, ..., N], got ${showShape(x.shape)}`);
      if (!(Number.isInteger(start) && start >= 0 && Number.isInteger(len) && len >= 1 && start + len <= n)) {
        throw new ShapeError(`slice(start = ${start}, len = ${len}) is outside the last dim of ${showShape(x.shape)} (0 <= start, 1 <= len, start + len <= ${n})`);
      }
      return { shape: [...x.shape.slice(0, -1), len], dtype: 'f32' };
    }
    case 'unary': expectF32('unary op', src); return { shape: src[0].shape, dtype: 'f32' };
    case 'binary': {
      const [a, b] = src;
      expectF32('arithmetic', src);
      if (a.shape.length === 0) return { shape: b.shape, dtype: 'f32' };
      if (b.shape.length === 0 || sameShape(a.shape, b.shape)) return { shape: a.shape, dtype: 'f32' };
      if (broadcasts(b.shape, a.shape)) return { shape: a.shape, dtype: 'f32' };
      if (broadcasts(a.shape, b.shape)) return { shape: b.shape, dtype: 'f32' };
      if (perTokenScalar(b.shape, a.shape)) return { shape: a.shape, dtype: 'f32' };
      if (perTokenScalar(a.shape, b.shape)) return { shape: b.shape, dtype: 'f32' };
      throw new ShapeError(`operand shapes ${showShape(a.shape)} and ${showShape(b.shape)} differ (a shape without T may repeat over the other's leading dims when it is a suffix of it, as [N] of [T, N]; a [T, 1] along each token's row)`);
    }
    case 'fused_matmul': {
      const a = arg as OpArgs['fused_matmul'];
      const x = src[0];
      const w = src[a.prologue === 'none' ? 1 : 2];
      const out: Typed = { shape: [x.shape[0], w.shape[1]], dtype: 'f32' };
      if (x.shape[1] !== w.shape[0]) throw new ShapeError(`fused matmul inner dims ${x.shape[1]} and ${w.shape[0]} differ`);
      if (a.residual && !sameShape(src[src.length - 1].shape, out.shape)) throw new ShapeError('fused residual shape differs from the matmul output');
      if (a.bias && !sameShape(src[a.prologue === 'none' ? 2 : 3].shape, [w.shape[1]])) throw new ShapeError(`fused bias must be [${w.shape[1]}], got ${showShape(src[a.prologue === 'none' ? 2 : 3].shape)}`);
      if (a.softcap !== undefined && !(a.softcap > 0 && Number.isFinite(a.softcap))) throw new ShapeError(`fused softcap must be a positive number, got ${a.softcap}`);
      return out;
    }
  }
  if (isMoeOp(op)) return moeType(op, arg, src);
  throw new ShapeError(`unknown op ${String(op)}`);
}
