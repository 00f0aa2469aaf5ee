// What a compiled Program needs in device memory for a given context, batch and tokens per
// forward: computed from the Program's buffer declarations (the same BufferDecl sizes the
// runtime allocates, runtime/runner/buffers.ts), its KV plan (program/kv.ts) and its memory
// plan's arenas (compiler/planMemory.ts), never from a separate formula sheet. The KV
// formula is written out next to the figure it gives, and the savings of GQA, KV
// quantisation, paging and the sliding window are a chain of steps from multi-head f16
// KV reserved for max_context per sequence down to the pool the engine allocates.
import { bufferBytes, type BufferDecl, type Program, type Sizing } from '../../program/program.ts';
import { KV_BITS, tokenBytesPerLayer } from '../../program/kv.ts';
import { STEP_UNIFORM_BYTES } from '../../program/stepUniform.ts';
import { activationBytes, paramBytes, paramType, unchosenExpertBytes } from '../cost.ts';
import { weightBytes } from '../../program/quant.ts';

/** The WebGPU device allocates multiples of 16 bytes, at least 16 (runtime/webgpu/gpuDevice.ts). */
export const ALLOCATION_ALIGN = 16;
const align = (n: number, a: number): number => Math.max(a, Math.ceil(n / a) * a);

export interface PlanShape {
  /** Tokens of context each sequence holds (prompt plus generated), <= the model's max_context. */
  readonly context: number;
  /** Sequences decoded together. */
  readonly batch: number;
  /** Most tokens one forward takes (prefill chunk); sizes the activations. */
  readonly tokensPerForward: number;
}

export interface KvSaving { readonly step: string; readonly bytes: number; readonly saved: number }

export interface MemoryReport {
  readonly weightsBytes: number;
  /** Weights one decode token reads: all but the unused embedding rows and the unchosen experts. */
  readonly activeWeightsBytesPerToken: number;
  readonly kvBytesPerToken: number;
  /** The formula's value at context x batch. */
  readonly kvBytesTotal: number;
  readonly kvFormula: string;
  readonly kvBytesPerValue: number;
  /** The pool the engine allocates for this shape: pages x page bytes x layers. */
  readonly kvPool: { readonly pages: number; readonly pageSize: number; readonly bytes: number };
  readonly kvSavings: readonly KvSaving[];
  readonly activationBytes: number;
  readonly sizing: Sizing;
  /** Every device allocation the engine makes for this shape, by buffer kind (16-byte aligned each). */
  readonly deviceBytes: number;
  readonly deviceBreakdown: Readonly<Record<string, number>>;
}

/**
 * Pages one sequence of `context` tokens needs when it grows `chunk` tokens per forward:
 * whole pages; with a window, fewer: runtime/kv/sequences.ts frees the pages wholly
 * behind a step's window, but only after allocating the step's new pages, so at its peak a
 * sequence holds the previous step's window (window - 1 + chunk keys) plus this step's
 * chunk, starting mid-page: ceil((window - 1 + 2 chunk) / page) + 1 pages.
 */
export function pagesPerSequence(p: Program, context: number, chunk: number): number {
  const k = p.kv;
  if (k.layout === 'contiguous') return 1;
  const all = Math.ceil(context / k.pageSize);
  return k.window === null ? all : Math.min(all, Math.ceil((k.window - 1 + 2 * chunk) / k.pageSize) + 1);
}

/** The runtime sizing for this shape: tokens per forward, KV pool pages, sequences. */
export function planSizing(p: Program, s: PlanShape): Sizing {
  return { maxTokens: s.tokensPerForward, pages: s.batch * pagesPerSequence(p, s.context, Math.min(s.context, s.tokensPerForward)), maxSeqs: s.batch };
}

/** Device bytes of every allocation the runner makes for `sizing`, by kind (arenas count as activations). */
export function deviceAllocation(p: Program, sizing: Sizing, alignTo = ALLOCATION_ALIGN): { total: number; byKind: Record<string, number> } {
  const byKind: Record<string, number> = { param: 0, kv: 0, activation: 0, input: 0, logits: 0, uniform: align(STEP_UNIFORM_BYTES, alignTo) };
  const add = (d: BufferDecl) => { byKind[d.kind] += align(bufferBytes(d, sizing), alignTo); };
  p.arenas.forEach(add);
  p.buffers.filter((d) => d.storage === undefined).forEach(add);
  return { total: Object.values(byKind).reduce((a, b) => a + b, 0), byKind };
}

/** Weight bytes a one-token step reads: every weight but the embedding rows of other tokens and the experts not chosen. */
export function activeWeightBytes(p: Program): number {
  const embed = p.params.find((q) => q.name === 'token_embd');
  const unusedRows = embed ? weightBytes(paramType(p, 'token_embd'), (p.model.vocab - 1) * p.model.dim) : 0;
  return paramBytes(p) - unusedRows - unchosenExpertBytes(p);
}

export function memoryReport(p: Program, s: PlanShape): MemoryReport {
  const m = p.model, k = p.kv;
  const perLayerToken = tokenBytesPerLayer(p.kv);
  const kvBytesPerToken = m.layers * perLayerToken;
  const kvBytesPerValue = perLayerToken / (2 * k.kvHeads * k.headDim);
  const kvBytesTotal = 2 * m.layers * k.kvHeads * k.headDim * s.context * s.batch * kvBytesPerValue;
  const valueNote = k.dtype === 'int8' || k.dtype === 'int4'
    ? ` (${k.dtype}: ${KV_BITS[k.dtype] / 8} byte per value + one f32 scale per ${k.headDim} values, rows padded to 32-bit words)`
    : k.dtype === 'f16' ? ' (f16)' : ' (f32)';
  const kvFormula = `2 x ${m.layers} layers x ${k.kvHeads} kv_heads x ${k.headDim} head_dim x ${s.context} seq x ${s.batch} batch x ${fmtNum(kvBytesPerValue)} bytes/value${valueNote} = ${kvBytesTotal} bytes`;
  const sizing = planSizing(p, s);
  const pageBytes = k.pageSize * perLayerToken * m.layers;
  const kvPool = { pages: sizing.pages, pageSize: k.pageSize, bytes: sizing.pages * pageBytes };

  // From multi-head f16 reserved for max_context per sequence to the pool the engine allocates.
  const reserved = s.batch * m.maxContext;
  const steps: [string, number][] = [];
  let bytes = 2 * m.layers * m.heads * k.headDim * reserved * 2;
  steps.push([`multi-head f16 KV, contiguous (${m.heads} heads, ${m.maxContext} slots per sequence)`, bytes]);
  bytes = 2 * m.layers * k.kvHeads * k.headDim * reserved * 2;
  steps.push([`grouped-query attention (${k.kvHeads} KV heads for ${m.heads} query heads)`, bytes]);
  bytes = reserved * kvBytesPerToken;
  steps.push([`KV stored as ${k.dtype}`, bytes]);
  if (k.layout === 'paged') {
    const all = s.batch * Math.ceil(s.context / k.pageSize) * k.pageSize * kvBytesPerToken;
    steps.push([`paged (pages of ${k.pageSize} tokens, ${s.context} tokens per sequence)`, all]);
    if (k.window !== null) steps.push([`sliding window of ${k.window} (evicted pages freed)`, kvPool.bytes]);
  }
  const kvSavings = steps.map(([step, b], i) => ({ step, bytes: b, saved: i === 0 ? 0 : steps[i - 1][1] - b }));
  const alloc = deviceAllocation(p, sizing);
  return {
    weightsBytes: paramBytes(p), activeWeightsBytesPerToken: activeWeightBytes(p), kvBytesPerToken, kvBytesTotal, kvFormula, kvBytesPerValue,
    kvPool, kvSavings, activationBytes: activationBytes(p, s.tokensPerForward), sizing, deviceBytes: alloc.total, deviceBreakdown: alloc.byKind,
  };
}

export function fmtNum(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(4).replace(/0+$/, '');
}
