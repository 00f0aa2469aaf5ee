// The CPU interpreter: the meaning of every IR op, computed in float64. It is the
// oracle every backend is tested against, and the CPU engine's executor.
import type { Node, Graph } from './graph.ts';
import type { WeightSource } from '../../program/weights.ts';
import type { OpArgs } from './ops.ts';
import { BINARY_MEANING, UNARY_MEANING } from './ops.ts';
import { elementsPerToken, perTokenScalar } from './shapes.ts';
import type { KvDType } from '../../program/model.ts';
import { storeRow, type KvStorage, type KvTables } from '../../program/kv.ts';

import { isMoeOp, moeValue } from './moe.ts';
import { attention, attentionScores, attentionValues } from './attention.ts';

export type Values = Float64Array | Float32Array;

/**
 * The CPU's KV page pool: per layer, K and V as [slot][kvHead][headDim] in float64,
 * slot = page * pageSize + offset. Values are stored as `storage.dtype` would hold them
 * (program/kv.ts storeRow), so the interpreter means exactly what a quantised cache means.
 * The defaults (one page of `slots` tokens, f32) are a single contiguous sequence.
 */
export class CpuKvCache {
  readonly k: Float64Array[];
  readonly v: Float64Array[];
  readonly storage: KvStorage;
  constructor(readonly layers: number, readonly kvHeads: number, readonly headDim: number, readonly slots: number,
    opts: { pageSize?: number; dtype?: KvDType } = {}) {
    const n = slots * kvHeads * headDim;
    this.k = Array.from({ length: layers }, () => new Float64Array(n));
    this.v = Array.from({ length: layers }, () => new Float64Array(n));
    this.storage = { kvHeads, headDim, pageSize: opts.pageSize ?? slots, dtype: opts.dtype ?? 'f32' };
  }
  /** Copies one page (every layer, K and V): copy-on-write of a shared page. */
  copyPage(from: number, to: number): void {
    const n = this.storage.pageSize * this.kvHeads * this.headDim;
    for (const a of [...this.k, ...this.v]) a.copyWithin(to * n, from * n, from * n + n);
  }
}

/** Tables for one sequence stored contiguously from slot 0 (pages 0, 1, 2, ...), covering the step's positions. */
export function contiguousTables(positions: Int32Array, pageSize: number): KvTables {
  const len = Math.max(0, ...positions) + 1;
  const n = Math.ceil(len / pageSize);
  return {
    slots: Int32Array.from(positions), seqOf: new Int32Array(positions.length), indptr: Int32Array.of(0, n),
    pages: Int32Array.from({ length: n }, (_, i) => i), lastLen: Int32Array.of(len - (n - 1) * pageSize),
  };
}

export interface StepInputs {
  tokens: Int32Array;
  positions: Int32Array;
  /** Block tables; default: one sequence stored contiguously (contiguousTables). */
  kv?: KvTables;
}

/** Runs the graph for one step of T tokens; returns every node's value (logits included). */
export function interpret(g: Graph, weights: WeightSource, kv: CpuKvCache, step: StepInputs): Map<Node, Values> {
  const T = step.tokens.length;
  if (step.positions.length !== T) throw new Error('tokens and positions differ in length');
  for (const p of step.positions) if (p < 0) throw new Error(`position ${p} is negative`);
  const tables = step.kv ?? contiguousTables(step.positions, kv.storage.pageSize);
  for (const s of tables.slots) if (s < 0 || s >= kv.slots) throw new Error(`KV slot ${s} is outside the pool of ${kv.slots} slots`);
  const val = new Map<Node, Values>();
  const ints = new Map<Node, Int32Array>();
  const size = (n: Node): number => (n.shape.includes('T') ? T : 1) * elementsPerToken(n.shape);
  for (const n of g.nodes) {
    const s = n.src.map((x) => val.get(x)!);
    switch (n.op) {
      case 'tokens': ints.set(n, step.tokens); break;
      case 'positions': ints.set(n, step.positions); break;
      case 'param': val.set(n, weights.get((n.arg as OpArgs['param']).name)); break;
      case 'const': val.set(n, Float64Array.of((n.arg as OpArgs['const']).value)); break;
      case 'embed': val.set(n, embed(ints.get(n.src[0])!, s[1], n.src[1].shape[0] as number, n.src[1].shape[1] as number)); break;
      case 'rmsnorm': val.set(n, rmsnorm(s[0], s[1], T, n.shape.at(-1) as number, (n.arg as OpArgs['rmsnorm']).eps)); break;
      case 'matmul': val.set(n, matmul(s[0], s[1], T, n.src[1].shape[0] as number, n.src[1].shape[1] as number)); break;
      case 'reshape': val.set(n, s[0]); break;
      case 'slice': {
        const { start, len } = n.arg as OpArgs['slice'];
        const N = n.src[0].shape.at(-1) as number, rows = s[0].length / N;
        const out = new Float64Array(rows * len);
        for (let r = 0; r < rows; r++) for (let j = 0; j < len; j++) out[r * len + j] = s[0][r * N + start + j];
        val.set(n, out);
        break;
      }
      case 'rope': {
        const a = n.arg as OpArgs['rope'], D = n.shape[2] as number;
        const x = a.norm === undefined ? s[0] : rmsnorm(s[0], s[2], T, D, a.norm);
        val.set(n, rope(x, ints.get(n.src[1])!, n.shape[1] as number, D, a.theta, !!a.neox));
        break;
      }
      case 'kv_store': {
        const a = n.arg as OpArgs['kv_store'];
        const k = a.norm === undefined ? s[0] : rmsnorm(s[0], s[3], T, n.src[0].shape[2] as number, a.norm);
        kvStore(kv, a, k, s[1], ints.get(n.src[2])!, tables.slots);
        break;
      }
      case 'attention': val.set(n, attention(kv, n.arg as OpArgs['attention'], s[0], ints.get(n.src[2])!, n.shape[1] as number, tables)); break;
      case 'attn_scores': val.set(n, attentionScores(kv, n.arg as OpArgs['attn_scores'], s[0], ints.get(n.src[2])!, n.shape[1] as number, tables)); break;
      case 'attn_values': val.set(n, attentionValues(kv, n.arg as OpArgs['attn_values'], s[0], ints.get(n.src[2])!, n.shape[1] as number, tables)); break;
      case 'unary': {
        const f = UNARY_MEANING[(n.arg as OpArgs['unary']).fn];
        val.set(n, Float64Array.from(s[0], f));
        break;
      }
      case 'binary': {
        const f = BINARY_MEANING[(n.arg as OpArgs['binary']).fn];
        const [a, b] = s;
        const out = new Float64Array(size(n));
        // A scalar (length 1) or a broadcast operand repeats: element i reads i mod its length;
        // a [T, 1] operand (perTokenScalar) repeats along its token's row of w: element i reads i / w.
        const w = elementsPerToken(n.shape);
        const at = (src: Node, len: number) => (perTokenScalar(src.shape, n.shape) ? (i: number) => Math.floor(i / w) : (i: number) => i % len);
        const ia = at(n.src[0], a.length), ib = at(n.src[1], b.length);
        for (let i = 0; i < out.length; i++) out[i] = f(a[ia(i)], b[ib(i)]);
        val.set(n, out);
        break;
      }
      case 'fused_matmul': val.set(n, fusedMatmul(n as Node<'fused_matmul'>, s, T)); break;
      default: if (isMoeOp(n.op)) val.set(n, moeValue(n, s, T));
    }
  }
  return val;
}

function embed(ids: Int32Array, table: Values, dim: number, vocab: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  ids.forEach((id, t) => {
    if (id < 0 || id >= vocab) throw new Error(`token id ${id} is outside the vocabulary of ${vocab}`);
    for (let d = 0; d < dim; d++) out[t * dim + d] = table[id * dim + d];
  });
  return out;
}

function rmsnorm(x: Values, w: Values, T: number, D: number, eps: number): Float64Array {
  const rows = x.length / D;
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[r * D + d] * x[r * D + d];
    const inv = 1 / Math.sqrt(ss / D + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d] * inv * w[d];
  }
  return out;
}

function matmul(x: Values, w: Values, T: number, K: number, N: number): Float64Array {
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      const wo = n * K, xo = t * K;
      for (let k = 0; k < K; k++) acc += x[xo + k] * w[wo + k];
      out[t * N + n] = acc;
    }
  }
  return out;
}

/**
 * RoPE: pair i rotates by pos * theta^(-2i/D). llama.cpp's "normal" style pairs
 * (x[2i], x[2i+1]); the NEOX style (neox) pairs (x[i], x[i + D/2]), rotating the halves.
 */
export function rope(x: Values, pos: Int32Array, H: number, D: number, theta: number, neox = false): Float64Array {
  const out = new Float64Array(x.length);
  const half = D / 2;
  for (let t = 0; t < pos.length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = pos[t] * Math.pow(theta, (-2 * i) / D);
      const c = Math.cos(angle), s = Math.sin(angle);
      for (let h = 0; h < H; h++) {
        const o0 = (t * H + h) * D + (neox ? i : 2 * i), o1 = o0 + (neox ? half : 1);
        out[o0] = x[o0] * c - x[o1] * s;
        out[o1] = x[o0] * s + x[o1] * c;
      }
    }
  }
  return out;
}

/** Writes each token's K (normalised by the caller when the append carries a norm, then rotated when it carries RoPE) and V rows, as the cache's dtype stores them. */
function kvStore(kv: CpuKvCache, a: OpArgs['kv_store'], k: Values, v: Values, pos: Int32Array, slots: Int32Array): void {
  const { kvHeads: KH, headDim: D, dtype } = kv.storage;
  const kr = a.rope === null ? k : rope(k, pos, KH, D, a.rope, !!a.neox);
  pos.forEach((_, t) => {
    for (let h = 0; h < KH; h++) {
      const src = (t * KH + h) * D, dst = (slots[t] * KH + h) * D;
      kv.k[a.layer].set(storeRow(kr.subarray(src, src + D), dtype).values, dst);
      kv.v[a.layer].set(storeRow(v.subarray(src, src + D), dtype).values, dst);
    }
  });
}

function fusedMatmul(n: Node<'fused_matmul'>, s: Values[], T: number): Float64Array {
  const { prologue, eps, residual, bias, softcap } = n.arg;
  const w = n.src[prologue === 'none' ? 1 : 2];
  const K = w.shape[0] as number, N = w.shape[1] as number;
  let x: Values = s[0];
  if (prologue === 'rmsnorm') x = rmsnorm(s[0], s[1], T, K, eps);
  if (prologue === 'silu_mul' || prologue === 'gelu_mul') {
    const f = UNARY_MEANING[prologue === 'silu_mul' ? 'silu' : 'gelu'];
    x = Float64Array.from(s[0], (g, i) => f(g) * s[1][i]);
  }
  const y = matmul(x, s[prologue === 'none' ? 1 : 2], T, K, N);
  if (bias) { const b = s[prologue === 'none' ? 2 : 3]; for (let i = 0; i < y.length; i++) y[i] += b[i % N]; }
  if (softcap !== undefined) for (let i = 0; i < y.length; i++) y[i] = softcap * Math.tanh(y[i] / softcap);
  if (residual) { const r = s[s.length - 1]; for (let i = 0; i < y.length; i++) y[i] += r[i]; }
  return y;
}
