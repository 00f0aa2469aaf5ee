// The kernels the CUDA tests render: every kernel of every example (fused and unfused: the
// kernels `infer compile --target cuda` writes), plus the kernel variants the examples do not
// reach on their own (q8_0 / q4_0 weights in every matmul prologue, embed and expert kernel;
// f16 and K-quant weights in each kernel kind that reads weights;
// every KV format with and without split-K; heads that do not split into float4s; the
// families' settings: NEOX RoPE, soft-capping, per-head norms, slices; parts of split params).
import { readdirSync, readFileSync } from 'node:fs';
import { compileSpec } from '../../compiler/compile.ts';
import { parseNoFuse } from '../../compiler/pipeline.ts';
import type { KernelSpec } from '../../program/kernels.ts';
import type { KvDType } from '../../program/model.ts';

export const EXAMPLES = readdirSync('examples').filter((f) => f.endsWith('.infer')).sort();

/** Every distinct kernel (by key) of the examples, fused and unfused, in example order. */
export function exampleKernels(): { example: string; key: string; spec: KernelSpec }[] {
  const seen = new Set<string>();
  const out: { example: string; key: string; spec: KernelSpec }[] = [];
  for (const f of EXAMPLES) {
    for (const noFuse of [undefined, parseNoFuse('all')]) {
      const c = compileSpec(readFileSync(`examples/${f}`, 'utf8'), `examples/${f}`, noFuse ? { noFuse } : {});
      if (!c.program) throw new Error(`examples/${f} did not compile`);
      for (const k of c.program.kernels) if (!seen.has(k.key)) { seen.add(k.key); out.push({ example: f, key: k.key, spec: k.spec }); }
    }
  }
  return out;
}

/**
 * Every distinct kernel of examples compiled as if their weight files kept the params compact
 * (weightTypes: every param f16, q4_K, q5_K or q6_K, and a Q4_K_M-style mix of q4_K with q6_K
 * for ffn_down and output): the compact-weight kernels a Program of a real file gets.
 */
export function compactProgramKernels(): { example: string; key: string; spec: KernelSpec }[] {
  const seen = new Set<string>();
  const out: { example: string; key: string; spec: KernelSpec }[] = [];
  for (const f of ['llama-20m.infer', 'tiny-mixtral.infer']) {
    const text = readFileSync(`examples/${f}`, 'utf8');
    const names = compileSpec(text, `examples/${f}`).program?.params.map((p) => p.name) ?? [];
    const mixes: ((name: string) => string)[] = [
      ...['f16', 'q4_K', 'q5_K', 'q6_K'].map((t) => () => t),
      (name) => (/ffn_down|^output$/.test(name) ? 'q6_K' : 'q4_K'),
    ];
    for (const mix of mixes) {
      const c = compileSpec(text, `examples/${f}`, { weightTypes: new Map(names.map((n) => [n, mix(n)])) });
      if (!c.program) throw new Error(`examples/${f} did not compile with compact weights`);
      for (const k of c.program.kernels) if (!seen.has(k.key)) { seen.add(k.key); out.push({ example: f, key: k.key, spec: k.spec }); }
    }
  }
  return out;
}

const KV_DTYPES: KvDType[] = ['f32', 'f16', 'int8', 'int4'];

/** Kernel variants beyond the examples' own (block weights, every KV format, split-K, odd head sizes). */
export const EXTRA_SPECS: KernelSpec[] = [
  ...(['q8_0', 'q4_0'] as const).flatMap((wtype): KernelSpec[] => [
    ...(['none', 'rmsnorm', 'silu_mul'] as const).map((prologue): KernelSpec => ({ kind: 'matmul', K: 256, N: 96, prologue, eps: 1e-5, residual: prologue === 'silu_mul', wtype })),
    { kind: 'embed', dim: 128, vocab: 300, wtype },
    { kind: 'moe_experts', K: 128, N: 96, experts: 8, k: 2, dense: false, input: 'swiglu', combine: false, residual: false, wtype },
    { kind: 'moe_experts', K: 96, N: 128, experts: 8, k: 2, dense: false, input: 'silu_mul', combine: true, residual: true, wtype },
  ]),
  // f16 (8-byte loads in the matmul, K % 8 == 4; 16-byte loads in the experts) and the K-quants:
  // each kind that reads weights once (the matmul's three variants), the SwiGLU pair reading two.
  ...(['f16', 'q4_K', 'q5_K', 'q6_K'] as const).flatMap((wtype): KernelSpec[] => [
    { kind: 'matmul', K: wtype === 'f16' ? 260 : 512, N: 96, prologue: 'rmsnorm', eps: 1e-5, residual: true, wtype },
    { kind: 'embed', dim: 256, vocab: 300, wtype },
    { kind: 'moe_experts', K: 256, N: 96, experts: 8, k: 2, dense: false, input: 'swiglu', combine: false, residual: false, wtype },
  ]),
  { kind: 'matmul', K: 37, N: 20, prologue: 'rmsnorm', eps: 1e-5, residual: true },
  { kind: 'moe_experts', K: 37, N: 20, experts: 4, k: 4, dense: true, input: 'slot', combine: false, residual: false },
  { kind: 'moe_route', K: 64, experts: 40, k: 4, score: 'sigmoid', softmax: true, renorm: false, scale: 2.5, direct: false },
  ...KV_DTYPES.flatMap((dtype): KernelSpec[] => [
    { kind: 'kv_append', kvHeads: 8, headDim: 128, pageSize: 16, dtype, rope: 500000 },
    { kind: 'kv_append', kvHeads: 3, headDim: 6, pageSize: 5, dtype, rope: null },
    { kind: 'attention', heads: 32, kvHeads: 8, headDim: 128, pageSize: 16, dtype, scale: 0.08838834764831845, window: null, causal: true, splits: 1 },
    { kind: 'attention', heads: 32, kvHeads: 8, headDim: 128, pageSize: 16, dtype, scale: 0.08838834764831845, window: 4096, causal: true, splits: 8 },
    { kind: 'attention', heads: 6, kvHeads: 3, headDim: 6, pageSize: 3, dtype, scale: 0.4, window: 3, causal: false, splits: 2 },
    { kind: 'attention', heads: 8, kvHeads: 1, headDim: 256, pageSize: 64, dtype, scale: 0.0625, window: null, causal: true, splits: 1 },
    { kind: 'attn_scores', heads: 8, kvHeads: 2, headDim: 64, pageSize: 16, dtype, scale: 0.125, window: 100, causal: true, context: 2048 },
    { kind: 'attn_values', heads: 8, kvHeads: 2, headDim: 64, pageSize: 16, dtype, window: 100, causal: true, context: 2048 },
  ]),
  { kind: 'attention_merge', heads: 32, headDim: 128, splits: 8 },
  // The families' settings in formats and shapes the examples do not reach: NEOX RoPE into a
  // quantised cache, soft-capping with split-K and odd head sizes, per-head norms of odd width.
  { kind: 'kv_append', kvHeads: 3, headDim: 6, pageSize: 5, dtype: 'int4', rope: 10000, neox: true },
  { kind: 'kv_append', kvHeads: 8, headDim: 128, pageSize: 16, dtype: 'f16', rope: 1e6, neox: true },
  { kind: 'attention', heads: 6, kvHeads: 3, headDim: 6, pageSize: 3, dtype: 'int8', scale: 0.4, window: 3, causal: true, splits: 2, softcap: 50 },
  { kind: 'attn_scores', heads: 8, kvHeads: 2, headDim: 64, pageSize: 16, dtype: 'f16', scale: 0.125, window: null, causal: true, context: 2048, softcap: 30 },
  { kind: 'rmsnorm', dim: 37, eps: 1e-6, rows: 3 },
  // Qwen3's per-head norms folded into RoPE and the KV append (fuseQkNorm.ts), in every KV format and both RoPE styles.
  ...KV_DTYPES.map((dtype): KernelSpec => ({ kind: 'kv_append', kvHeads: 8, headDim: 128, pageSize: 16, dtype, rope: 1e6, neox: dtype !== 'int8', norm: 1e-6 })),
  { kind: 'kv_append', kvHeads: 3, headDim: 6, pageSize: 5, dtype: 'int4', rope: null, norm: 1e-6 },
  { kind: 'rope', heads: 5, headDim: 6, theta: 10000, norm: 1e-6 },
  { kind: 'rope', heads: 32, headDim: 128, theta: 1e6, neox: true, norm: 1e-6 },
  { kind: 'rope', heads: 5, headDim: 6, theta: 10000, neox: true },
  { kind: 'slice', width: 37, rows: 2, start: 5, len: 11 },
  // Parts of split params (compiler/splitParams.ts): a column part of a weight, an id range of a table.
  { kind: 'matmul', K: 256, N: 96, prologue: 'rmsnorm', eps: 1e-5, residual: true, wtype: 'q4_0', colOffset: 160, outCols: 320 },
  { kind: 'matmul', K: 37, N: 20, prologue: 'silu_mul', eps: 0, residual: false, colOffset: 20, outCols: 41 },
  // The matmul epilogue (bias, softcap) with block weights, in a part, and on scalar rows.
  { kind: 'matmul', K: 256, N: 96, prologue: 'rmsnorm', eps: 1e-5, residual: true, wtype: 'q4_0', colOffset: 160, outCols: 320, bias: true, softcap: 30 },
  { kind: 'matmul', K: 37, N: 20, prologue: 'gelu_mul', eps: 0, residual: false, softcap: 0.5 },
  { kind: 'matmul', K: 256, N: 96, prologue: 'none', eps: 0, residual: false, wtype: 'q8_0', bias: true },
  { kind: 'embed', dim: 128, vocab: 300, wtype: 'q8_0', idOffset: 300, vocabTotal: 700 },
  { kind: 'embed', dim: 37, vocab: 50, idOffset: 0, vocabTotal: 90 },
];
