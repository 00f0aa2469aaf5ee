// The CPU interpreter: the meaning of every IR op, computed in float64. It is the
// oracle every backend is tested against, and the CPU engine's executor.
import type { Node, Graph } from './graph.ts';
import type { OpArgs } from './ops.ts';
import { BINARY_MEANING, UNARY_MEANING } from './ops.ts';
import { elementsPerToken } from './shapes.ts';
import { isMoeOp, moeValue } from './moe.ts';

export type Values = Float64Array | Float32Array;

/** Weights in storage layout (2-D [K, N] params: element (k, n) at n*K + k). */
export interface WeightSource { get(name: string): Float32Array }

/** Per-layer K/V in float64, [position][kvHead][headDim], for one sequence. */
export class CpuKvCache {
  readonly k: Float64Array[];
  readonly v: Float64Array[];
  constructor(readonly layers: number, readonly kvHeads: number, readonly headDim: number, readonly maxContext: number) {
    const n = maxContext * kvHeads * headDim;
    this.k = Array.from({ length: layers }, () => new Float64Array(n));
    this.v = Array.from({ length: layers }, () => new Float64Array(n));
  }
}

export interface StepInputs { tokens: Int32Array; positions: Int32Array }

/** Runs the graph for one step of T tokens; returns every node's value (logits included). */
export function interpret(g: Graph, weights: WeightSource, kv: CpuKvCache, step: StepInputs): Map<Node, Values> {
  const T = step.tokens.length;
  if (step.positions.length !== T) throw new Error('tokens and positions differ in length');
  for (const p of step.positions) if (p < 0 || p >= kv.maxContext) throw new Error(`position ${p} is outside the context of ${kv.maxContext}`);
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
      case 'rope': val.set(n, rope(s[0], ints.get(n.src[1])!, n.shape[1] as number, n.shape[2] as number, (n.arg as OpArgs['rope']).theta)); break;
      case 'kv_store': kvStore(kv, (n.arg as OpArgs['kv_store']).layer, s[0], s[1], ints.get(n.src[2])!); break;
      case 'attention': val.set(n, attention(kv, n.arg as OpArgs['attention'], s[0], ints.get(n.src[2])!, n.shape[1] as number)); break;
      case 'unary': {
        const f = UNARY_MEANING[(n.arg as OpArgs['unary']).fn];
        val.set(n, Float64Array.from(s[0], f));
        break;
      }
      case 'binary': {
        const f = BINARY_MEANING[(n.arg as OpArgs['binary']).fn];
        const [a, b] = s;
        const out = new Float64Array(size(n));
        for (let i = 0; i < out.length; i++) out[i] = f(a.length === 1 ? a[0] : a[i], b.length === 1 ? b[0] : b[i]);
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

/** llama.cpp's "normal" RoPE: rotate pairs (x[2i], x[2i+1]) by pos * theta^(-2i/D). */
function rope(x: Values, pos: Int32Array, H: number, D: number, theta: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let t = 0; t < pos.length; t++) {
    for (let i = 0; i < D / 2; i++) {
      const angle = pos[t] * Math.pow(theta, (-2 * i) / D);
      const c = Math.cos(angle), s = Math.sin(angle);
      for (let h = 0; h < H; h++) {
        const o = (t * H + h) * D + 2 * i;
        out[o] = x[o] * c - x[o + 1] * s;
        out[o + 1] = x[o] * s + x[o + 1] * c;
      }
    }
  }
  return out;
}

function kvStore(kv: CpuKvCache, layer: number, k: Values, v: Values, pos: Int32Array): void {
  const row = kv.kvHeads * kv.headDim;
  pos.forEach((p, t) => {
    for (let i = 0; i < row; i++) {
      kv.k[layer][p * row + i] = k[t * row + i];
      kv.v[layer][p * row + i] = v[t * row + i];
    }
  });
}

/** Causal (optionally windowed) GQA: query head h reads KV head floor(h / (H / KH)). */
function attention(kv: CpuKvCache, a: OpArgs['attention'], q: Values, pos: Int32Array, H: number): Float64Array {
  const { kvHeads: KH, headDim: D } = kv;
  const group = H / KH;
  const out = new Float64Array(q.length);
  const kc = kv.k[a.layer], vc = kv.v[a.layer];
  for (let t = 0; t < pos.length; t++) {
    const hi = a.causal ? pos[t] : Math.max(...pos);
    const lo = a.window === null ? 0 : Math.max(0, pos[t] - a.window + 1);
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / group);
      const qo = (t * H + h) * D;
      const scores = new Float64Array(hi - lo + 1);
      let max = -Infinity;
      for (let s = lo; s <= hi; s++) {
        let dot = 0;
        const ko = (s * KH + kh) * D;
        for (let d = 0; d < D; d++) dot += q[qo + d] * kc[ko + d];
        scores[s - lo] = dot * a.scale;
        max = Math.max(max, scores[s - lo]);
      }
      let sum = 0;
      for (let i = 0; i < scores.length; i++) { scores[i] = Math.exp(scores[i] - max); sum += scores[i]; }
      for (let s = lo; s <= hi; s++) {
        const p = scores[s - lo] / sum;
        const vo = (s * KH + kh) * D;
        for (let d = 0; d < D; d++) out[qo + d] += p * vc[vo + d];
      }
    }
  }
  return out;
}

function fusedMatmul(n: Node<'fused_matmul'>, s: Values[], T: number): Float64Array {
  const { prologue, eps, residual } = n.arg;
  const w = n.src[prologue === 'none' ? 1 : 2];
  const K = w.shape[0] as number, N = w.shape[1] as number;
  let x: Values = s[0];
  if (prologue === 'rmsnorm') x = rmsnorm(s[0], s[1], T, K, eps);
  if (prologue === 'silu_mul') x = Float64Array.from(s[0], (g, i) => UNARY_MEANING.silu(g) * s[1][i]);
  const y = matmul(x, s[prologue === 'none' ? 1 : 2], T, K, N);
  if (residual) { const r = s[s.length - 1]; for (let i = 0; i < y.length; i++) y[i] += r[i]; }
  return y;
}
