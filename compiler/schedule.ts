// IR -> Program: one dispatch per computing node, a buffer per value (reshapes
// alias their source, constants are inlined into elementwise kernels), and one
// deduplicated kernel per distinct parameter set; then activations share storage by
// liveness (planMemory.ts).
import type { Graph, Node } from './ir/graph.ts';
import type { OpArgs } from './ir/ops.ts';
import { elementsPerToken, perTokenScalar } from './ir/shapes.ts';
import type { BufferDecl, Program, Step } from '../program/program.ts';
import type { ElementwiseExpr, KernelSpec } from '../program/kernels.ts';
import { kernelKey } from '../program/kernels.ts';
import { GREEDY_BUFFERS, PROGRAM_FORMAT, type KvPlan } from '../program/program.ts';
import type { ModelInfo } from '../program/model.ts';
import { kvTableElements, pageWords } from '../program/kv.ts';

/** The KV pool's storage and default size; contiguous = one maxContext-slot page per sequence. */
export function kvPlan(m: ModelInfo, maxSequences: number): KvPlan {
  const pageSize = m.kv.layout.kind === 'paged' ? m.kv.layout.pageSize : m.maxContext;
  const pagesPerSequence = Math.ceil(m.maxContext / pageSize);
  return {
    layout: m.kv.layout.kind, kvHeads: m.kvHeads, headDim: m.headDim, pageSize, dtype: m.kv.dtype, window: m.kv.window,
    pagesPerSequence, maxSequences, pages: maxSequences * pagesPerSequence,
  };
}
import { quantParams } from './quantParams.ts';
import type { CompactType } from '../program/quant.ts';
import { expertsRoutingIndex } from './ir/moe.ts';
import { planMemory } from './planMemory.ts';
import { SplitError, splitParams } from './splitParams.ts';
import { WEBGPU_DEFAULT_LIMITS, type BufferLimits } from '../program/program.ts';

export class ScheduleError extends Error {}

export interface ScheduleOptions {
  /** Default batch capacity (sequences decoded together); the runtime may choose another. */
  readonly maxSequences?: number;
  /** Workgroups each token's attention key range is split across (default: attentionSplits). */
  readonly attentionSplits?: number;
  /**
   * The weight file's type per param name (e.g. from a GGUF header). Params stored as
   * f16 / bf16 (as f16) or in blocks, whose every use can read them compactly, stay
   * that way on the device (quantParams.ts decides); everything else is f32 (widened at load).
   */
  readonly weightTypes?: ReadonlyMap<string, string>;
  /**
   * Share activation storage between buffers whose live ranges do not overlap
   * (planMemory.ts; default true). false gives every activation a buffer of its own:
   * the baseline the planner is tested against.
   */
  readonly planMemory?: boolean;
  /**
   * The device buffer limits to schedule for (default: WebGPU's defaults, which every
   * adapter meets): params over them are split into column parts (splitParams.ts).
   */
  readonly limits?: BufferLimits;
}

/**
 * Flash-decoding split: one query token of one KV head is one workgroup's work, far too
 * little to fill a GPU at long context. Splitting the key range so each split sees about
 * 1024 keys at full context (at most 32 splits) fills the device; the splits share each
 * token's actual range evenly at run time, so short contexts lose only the merge.
 */
export function attentionSplits(maxContext: number): number {
  return Math.max(1, Math.min(32, Math.floor(maxContext / 1024)));
}

export function schedule(g: Graph, passes: readonly string[] = [], opts: ScheduleOptions = {}): Program {
  const m = g.model;
  const kv = kvPlan(m, opts.maxSequences ?? 4);
  const splits = opts.attentionSplits ?? attentionSplits(m.maxContext);
  if (!Number.isInteger(splits) || splits < 1) throw new ScheduleError(`attention splits must be an integer >= 1, got ${splits}`);
  const quant = quantParams(g, opts.weightTypes);
  const limits = opts.limits ?? WEBGPU_DEFAULT_LIMITS;
  let split;
  try { split = splitParams(g, quant, limits); } catch (e) { throw e instanceof SplitError ? new ScheduleError(e.message) : e; }
  // A split param's buffers, in column order (the op that reads it emits one dispatch per part).
  const partsOf = new Map<Node, { buffer: string; first: number; count: number }[]>();
  const wtypeOf = (n: Node): { wtype?: CompactType } => {
    const t = n.op === 'param' ? quant.get((n.arg as OpArgs['param']).name) : undefined;
    return t ? { wtype: t } : {};
  };
  const buffers: BufferDecl[] = [];
  const kernels = new Map<string, KernelSpec>();
  const steps: Step[] = [];
  const bufOf = new Map<Node, string>();
  const kvName = (layer: number, which: 'k' | 'v') => `kv.${which}.${layer}`;

  const addBuffer = (d: BufferDecl): string => { buffers.push(d); return d.name; };
  const activation = (n: Node, kind: 'activation' | 'logits' = 'activation'): string =>
    addBuffer({ name: kind === 'logits' ? 'logits' : `t${n.id}`, kind, dtype: 'f32', perToken: elementsPerToken(n.shape), elements: 0 });
  const emit = (n: Node, spec: KernelSpec, args: Record<string, string>, labelSuffix = ''): void => {
    const key = kernelKey(spec);
    kernels.set(key, spec);
    steps.push({ kernel: key, args, label: `%${n.id} ${n.op}${labelSuffix}` });
  };
  type MatmulSpec = Extract<KernelSpec, { kind: 'matmul' }>;
  // A matmul whose weight is split: one dispatch per part, each writing its columns of `out`.
  const emitMatmul = (n: Node, spec: MatmulSpec, inputs: Record<string, string>, w: Node, o: string): void => {
    const parts = partsOf.get(w);
    if (!parts) { emit(n, spec, { ...inputs, w: bufOf.get(w)!, out: o }); return; }
    parts.forEach((p, i) => emit(n, { ...spec, N: p.count, colOffset: p.first, outCols: spec.N }, { ...inputs, w: p.buffer, out: o }, ` part ${i + 1}/${parts.length}`));
  };

  // The page pool: per layer, K and V pages (rows, then scales for int8/int4; see
  // program/kv.ts); the block tables are per-step inputs.
  for (let layer = 0; layer < m.layers; layer++) {
    for (const which of ['k', 'v'] as const) {
      addBuffer({ name: kvName(layer, which), kind: 'kv', dtype: kv.dtype === 'f32' ? 'f32' : 'u32', perToken: 0, elements: 0, perPage: pageWords(kv) });
    }
  }
  const kvArgs = (layer: number): Record<string, string> => ({ kcache: kvName(layer, 'k'), vcache: kvName(layer, 'v') });
  const tables = {
    kv_slot: addBuffer({ name: 'kv_slot', kind: 'input', dtype: 'i32', perToken: 1, elements: 0 }),
    kv_seq: addBuffer({ name: 'kv_seq', kind: 'input', dtype: 'i32', perToken: 1, elements: 0 }),
    kv_table: addBuffer({ name: 'kv_table', kind: 'input', dtype: 'i32', perToken: 0, elements: kvTableElements(0, 0), perSeq: kvTableElements(1, kv.pagesPerSequence) - kvTableElements(0, 0) }),
  };
  // Greedy sampling on the device: one row index in and one token id out per sequence.
  addBuffer({ name: GREEDY_BUFFERS.rows, kind: 'input', dtype: 'i32', perToken: 0, elements: 0, perSeq: 1 });
  addBuffer({ name: GREEDY_BUFFERS.ids, kind: 'logits', dtype: 'i32', perToken: 0, elements: 0, perSeq: 1 });

  for (const n of g.nodes) {
    const src = (i: number) => bufOf.get(n.src[i])!;
    const out = () => { const b = activation(n, n === g.logits ? 'logits' : 'activation'); bufOf.set(n, b); return b; };
    switch (n.op) {
      case 'tokens': case 'positions':
        bufOf.set(n, addBuffer({ name: n.op, kind: 'input', dtype: 'i32', perToken: 1, elements: 0 }));
        break;
      case 'param': {
        const name = (n.arg as OpArgs['param']).name;
        const parts = split.get(name);
        if (parts) {
          const K = n.shape[0] as number;
          partsOf.set(n, parts.map((part, i) => ({ ...part, buffer: addBuffer({ name: `param:${name}@${i}`, kind: 'param', dtype: quant.get(name) ?? 'f32', perToken: 0, elements: K * part.count, part }) })));
          break;
        }
        bufOf.set(n, addBuffer({ name: `param:${name}`, kind: 'param', dtype: quant.get(name) ?? 'f32', perToken: 0, elements: elementsPerToken(n.shape) }));
        break;
      }
      case 'const': break; // inlined into the elementwise kernels that use it
      case 'reshape': bufOf.set(n, src(0)); break;
      case 'slice': {
        const { start, len } = n.arg as OpArgs['slice'];
        const width = n.src[0].shape.at(-1) as number;
        emit(n, { kind: 'slice', width, rows: elementsPerToken(n.shape) / len, start, len }, { x: src(0), out: out() });
        break;
      }
      case 'embed': {
        const [dim, vocab] = n.src[1].shape as number[];
        const parts = partsOf.get(n.src[1]);
        if (!parts) { emit(n, { kind: 'embed', dim, vocab, ...wtypeOf(n.src[1]) }, { tokens: src(0), table: src(1), out: out() }); break; }
        const o = out();
        parts.forEach((p, i) => emit(n, { kind: 'embed', dim, vocab: p.count, ...wtypeOf(n.src[1]), idOffset: p.first, vocabTotal: vocab },
          { tokens: src(0), table: p.buffer, out: o }, ` part ${i + 1}/${parts.length}`));
        break;
      }
      case 'rmsnorm': {
        const dim = n.shape.at(-1) as number, rows = elementsPerToken(n.shape) / dim;
        emit(n, { kind: 'rmsnorm', dim, eps: (n.arg as OpArgs['rmsnorm']).eps, ...(rows > 1 ? { rows } : {}) }, { x: src(0), weight: src(1), out: out() });
        break;
      }
      case 'matmul': {
        const [K, N] = n.src[1].shape as number[];
        emitMatmul(n, { kind: 'matmul', K, N, prologue: 'none', eps: 0, residual: false, ...wtypeOf(n.src[1]) }, { x: src(0) }, n.src[1], out());
        break;
      }
      case 'fused_matmul': {
        const a = n.arg as OpArgs['fused_matmul'];
        const wi = a.prologue === 'none' ? 1 : 2;
        const [K, N] = n.src[wi].shape as number[];
        const names = a.prologue === 'none' ? ['x'] : a.prologue === 'rmsnorm' ? ['x', 'norm'] : ['gate', 'up'];
        const args: Record<string, string> = {};
        names.forEach((name, i) => { args[name] = src(i); });
        // The bias is the whole row's [N] vector in every part of a split weight (each reads its own columns).
        if (a.bias) args.bias = src(wi + 1);
        if (a.residual) args.res = src(n.src.length - 1);
        const epilogue = { ...(a.bias ? { bias: true as const } : {}), ...(a.softcap !== undefined ? { softcap: a.softcap } : {}) };
        emitMatmul(n, { kind: 'matmul', K, N, prologue: a.prologue, eps: a.eps, residual: a.residual, ...wtypeOf(n.src[wi]), ...epilogue }, args, n.src[wi], out());
        break;
      }
      case 'rope': {
        const [, heads, headDim] = n.shape as [unknown, number, number];
        const { theta, neox, norm } = n.arg as OpArgs['rope'];
        const normed = norm !== undefined ? { norm } : {};
        emit(n, { kind: 'rope', heads, headDim, theta, ...(neox ? { neox } : {}), ...normed }, { x: src(0), positions: src(1), ...(norm !== undefined ? { norm: src(2) } : {}), out: out() });
        break;
      }
      case 'kv_store': {
        const a = n.arg as OpArgs['kv_store'];
        const [, kvHeads, headDim] = n.src[0].shape as [unknown, number, number];
        if (kvHeads !== m.kvHeads || headDim !== m.headDim) throw new ScheduleError(`cache(k, v) of layer ${a.layer} has shape [T, ${kvHeads}, ${headDim}], but the model's KV cache is [T, ${m.kvHeads}, ${m.headDim}]`);
        emit(n, { kind: 'kv_append', kvHeads, headDim, pageSize: kv.pageSize, dtype: kv.dtype, rope: a.rope, ...(a.neox ? { neox: true } : {}), ...(a.norm !== undefined ? { norm: a.norm } : {}) },
          { k: src(0), v: src(1), positions: src(2), kv_slot: tables.kv_slot, ...(a.norm !== undefined ? { norm: src(3) } : {}), ...kvArgs(a.layer) });
        bufOf.set(n, kvName(a.layer, 'k'));
        break;
      }
      case 'attention': {
        const a = n.arg as OpArgs['attention'];
        const [, heads, headDim] = n.shape as [unknown, number, number];
        const spec = { kind: 'attention' as const, heads, kvHeads: m.kvHeads, headDim, pageSize: kv.pageSize, dtype: kv.dtype, scale: a.scale, window: a.window, causal: a.causal, splits, ...(a.softcap !== undefined ? { softcap: a.softcap } : {}) };
        const common = { q: src(0), positions: src(2), kv_seq: tables.kv_seq, kv_table: tables.kv_table, ...kvArgs(a.layer) };
        if (splits === 1) { emit(n, spec, { ...common, out: out() }); break; }
        const part = addBuffer({ name: `t${n.id}.part`, kind: 'activation', dtype: 'f32', perToken: heads * splits * (headDim + 2), elements: 0 });
        emit(n, spec, { ...common, out: part });
        emit(n, { kind: 'attention_merge', heads, headDim, splits }, { part, out: out() });
        break;
      }
      // The unfused attention (--no-fuse attention): scores, a softmax per (token, head), P.V.
      case 'attn_scores': case 'attn_values': {
        const a = n.arg as OpArgs['attn_scores'] & OpArgs['attn_values'];
        const heads = n.shape[1] as number, headDim = m.headDim;
        const context = n.op === 'attn_scores' ? a.context : n.src[0].shape[2] as number;
        const common = { heads, kvHeads: m.kvHeads, headDim, pageSize: kv.pageSize, dtype: kv.dtype, window: a.window, causal: a.causal, context };
        const tb = { positions: src(2), kv_seq: tables.kv_seq, kv_table: tables.kv_table };
        if (n.op === 'attn_scores') emit(n, { kind: 'attn_scores', ...common, scale: a.scale, ...(a.softcap !== undefined ? { softcap: a.softcap } : {}) }, { q: src(0), ...tb, kcache: kvName(a.layer, 'k'), out: out() });
        else emit(n, { kind: 'attn_values', ...common }, { p: src(0), ...tb, vcache: kvName(a.layer, 'v'), out: out() });
        break;
      }
      case 'moe_route': {
        const a = n.arg as OpArgs['moe_route'];
        const [K, experts] = n.src[1].shape as number[];
        emit(n, { kind: 'moe_route', K, experts, k: a.k, score: a.score, softmax: a.softmax, renorm: a.renorm, scale: a.scale, direct: false }, { x: src(0), router: src(1), out: out() });
        break;
      }
      case 'moe_experts': {
        const a = n.arg as OpArgs['moe_experts'];
        const wi = a.input === 'silu_mul' ? 2 : 1;
        const [K, N, experts] = n.src[wi].shape as number[];
        const ri = expertsRoutingIndex(a);
        const args: Record<string, string> = a.input === 'silu_mul' ? { gate: src(0), up: src(1) } : { x: src(0) };
        args.w = src(wi);
        if (a.input === 'swiglu') args.w2 = src(2);
        args.routing = src(ri);
        if (a.residual) args.res = src(ri + 1);
        args.out = out();
        // quantParams keeps a swiglu pair's w and w2 in one type, so w's is the kernel's.
        emit(n, { kind: 'moe_experts', K, N, experts, k: n.src[ri].shape[1] as number, dense: false, ...a, ...wtypeOf(n.src[wi]) }, args);
        break;
      }
      // The unfused (dense) MoE ops: every expert computes every token, as the IR defines it.
      case 'softmax': {
        const rows = elementsPerToken(n.shape) / (n.shape.at(-1) as number);
        emit(n, { kind: 'softmax', width: n.shape.at(-1) as number, ...(rows > 1 ? { rows } : {}) }, { x: src(0), out: out() });
        break;
      }
      case 'topk': {
        const a = n.arg as OpArgs['topk'];
        const E = n.src[0].shape[1] as number;
        emit(n, { kind: 'moe_route', K: E, experts: E, k: a.k, score: 'none', softmax: a.softmax, renorm: a.renorm, scale: a.scale, direct: true }, { x: src(0), out: out() });
        break;
      }
      case 'expert_matmul': {
        const [K, N, experts] = n.src[1].shape as number[];
        const input = n.src[0].shape.length === 3 ? 'slot' : 'shared';
        emit(n, { kind: 'moe_experts', K, N, experts, k: experts, dense: true, input, combine: false, residual: false, ...wtypeOf(n.src[1]) }, { x: src(0), w: src(1), out: out() });
        break;
      }
      case 'moe': {
        const [, experts, width] = n.src[1].shape as number[];
        emit(n, { kind: 'moe_combine', experts, k: n.src[0].shape[1] as number, width }, { routing: src(0), y: src(1), out: out() });
        break;
      }
      case 'unary': case 'binary': {
        const inputs: string[] = [];
        const expr = elementwiseExpr(n, bufOf, inputs);
        const args: Record<string, string> = {};
        inputs.forEach((b, i) => { args[`in${i}`] = b; });
        args.out = out();
        emit(n, { kind: 'elementwise', width: elementsPerToken(n.shape), inputs: inputs.length, expr }, args);
        break;
      }
    }
  }
  const kernelList = [...kernels].map(([key, spec]) => ({ key, spec }));
  const logits = bufOf.get(g.logits)!;
  // Last: activations share storage by liveness over the finished dispatch list.
  const memory = opts.planMemory === false ? { buffers, arenas: [] } : planMemory({ buffers, kernels: kernelList, steps, logits });
  return {
    format: PROGRAM_FORMAT, model: m, params: g.params, buffers: memory.buffers, arenas: memory.arenas, kv, limits,
    kernels: kernelList, steps, logits, passes,
  };
}

/** One node's elementwise expression; scalar constants inline, every other source is an input. */
function elementwiseExpr(n: Node, bufOf: Map<Node, string>, inputs: string[]): ElementwiseExpr {
  const operand = (s: Node): ElementwiseExpr => {
    if (s.op === 'const') return { kind: 'const', value: (s.arg as OpArgs['const']).value };
    if (s.shape.length === 0) throw new ScheduleError(`scalar operand %${s.id} must be a constant`);
    const b = bufOf.get(s)!;
    let i = inputs.indexOf(b);
    if (i < 0) { i = inputs.length; inputs.push(b); }
    // An operand without T that is not the node's shape repeats along each token's row (shapes.ts `broadcasts`).
    if (perTokenScalar(s.shape, n.shape)) return { kind: 'input', index: i, perToken: true };
    return !s.shape.includes('T') && n.shape.includes('T') ? { kind: 'input', index: i, period: elementsPerToken(s.shape) } : { kind: 'input', index: i };
  };
  if (n.op === 'unary') return { kind: 'unary', fn: (n.arg as OpArgs['unary']).fn, arg: operand(n.src[0]) };
  return { kind: 'binary', fn: (n.arg as OpArgs['binary']).fn, left: operand(n.src[0]), right: operand(n.src[1]) };
}
