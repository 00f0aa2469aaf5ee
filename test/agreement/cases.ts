// The random llama files of the agreement suite and the tolerance each must meet.
//
// The tolerance is on |logprob_infer - logprob_llama.cpp| for every token of the
// vocabulary at every position (where llama.cpp's f32 probability is above 1e-30,
// i.e. not lost to underflow): |delta| <= abs + rel * |logprob_llama.cpp|.
//   EXACT (abs 1e-4, rel 0): f32 files, and files whose only non-f32 matrix is
//     token_embd: llama.cpp reads it with get_rows, which dequantises exactly as
//     infer does, so these cases check infer's f16/bf16/q8_0/q4_0/q4_K decoding bit
//     for bit. Measured: about 2e-6.
//   f16 everywhere (rel 3e-3): some of llama.cpp's CPU f16 matmul paths round the
//     activations to f16 first (2^-11 relative) and infer keeps them f32; which
//     path runs depends on the shapes (the untied MQA file measures 2e-6, the
//     tied GQA one 9e-3 at logprob -10, i.e. rel 8.6e-4).
//   bf16 everywhere (rel 4e-2): likewise with bf16 activations (2^-8); measured rel 1.2e-2.
//   q8_0, q4_0, q4_K everywhere (rel 4e-2): llama.cpp quantises the activations to
//     q8_0 / q8_K blocks for its integer dot products; infer dequantises the weights
//     (exactly, see above) and keeps f32 activations: the CPU engine at load, the
//     WebGPU engine in its kernels for q8_0 / q4_0 (the blocks stay on the device;
//     q4_K is dequantised at load). Measured rel 1e-2 to 1.5e-2.
// The error grows with |logprob| because these roundings are relative errors of the
// logits: the tied files have logits of std ~8 and tails near logprob -70.
import type { GgufLlama } from '../fixtures/ggufLlama.ts';

export interface Tolerance { readonly abs: number; readonly rel: number }

export interface AgreementCase extends GgufLlama {
  readonly label: string;
  readonly tol: Tolerance;
}

const base = { vocab: 288, layers: 2, ctx: 128 } as const;

export const EXACT: Tolerance = { abs: 1e-4, rel: 0 };
export const F16_TOL: Tolerance = { abs: 1e-4, rel: 3e-3 };
export const BF16_TOL: Tolerance = { abs: 1e-4, rel: 4e-2 };
export const QUANT_TOL: Tolerance = { abs: 1e-4, rel: 4e-2 };

export const F32_CASES: AgreementCase[] = [
  { ...base, label: 'GQA f32 untied', dim: 64, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', tied: false, seed: 1, tol: EXACT },
  { ...base, label: 'MQA f32 tied', vocab: 320, dim: 96, heads: 6, kvHeads: 1, ffn: 160, type: 'f32', tied: true, seed: 2, tol: EXACT },
  { ...base, label: 'MHA f32 3 layers, theta 5e5, eps 1e-6', dim: 32, layers: 3, heads: 2, kvHeads: 2, ffn: 72, type: 'f32', tied: false, seed: 3, theta: 500000, eps: 1e-6, tol: EXACT },
  { ...base, label: 'GQA f16 tied, head_dim 8', dim: 64, heads: 8, kvHeads: 2, ffn: 128, type: 'f16', tied: true, seed: 4, tol: F16_TOL },
  { ...base, label: 'MQA f16 untied', dim: 128, layers: 1, heads: 4, kvHeads: 1, ffn: 256, type: 'f16', tied: false, seed: 5, tol: F16_TOL },
  // Mixtral-style MoE: llama.cpp's llama architecture with expert_count > 0 routes by
  // softmax -> top-k -> renormalise, which `infer import` spells topk(softmax(...)).
  { ...base, label: 'MoE f32 8 experts top-2, GQA', dim: 64, heads: 4, kvHeads: 2, ffn: 48, experts: 8, expertsUsed: 2, type: 'f32', tied: false, seed: 6, tol: EXACT },
  { ...base, label: 'MoE f32 16 experts top-4, MQA tied', dim: 32, layers: 3, heads: 4, kvHeads: 1, ffn: 24, experts: 16, expertsUsed: 4, type: 'f32', tied: true, seed: 7, tol: EXACT },
]

export const QUANT_CASES: AgreementCase[] = [
  { ...base, label: 'token_embd q8_0', dim: 64, layers: 1, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', embdType: 'q8_0', tied: false, seed: 11, tol: EXACT },
  { ...base, label: 'token_embd q4_0', dim: 64, layers: 1, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', embdType: 'q4_0', tied: false, seed: 12, tol: EXACT },
  { ...base, label: 'token_embd f16', dim: 64, layers: 1, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', embdType: 'f16', tied: false, seed: 18, tol: EXACT },
  { ...base, label: 'token_embd bf16', dim: 64, layers: 1, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', embdType: 'bf16', tied: false, seed: 13, tol: EXACT },
  { ...base, label: 'token_embd q4_K', dim: 256, layers: 1, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', embdType: 'q4_K', tied: false, seed: 14, tol: EXACT },
  { ...base, label: 'GQA bf16 tied', dim: 64, heads: 4, kvHeads: 2, ffn: 128, type: 'bf16', tied: true, seed: 15, tol: BF16_TOL },
  { ...base, label: 'GQA q8_0 untied', dim: 64, heads: 4, kvHeads: 2, ffn: 128, type: 'q8_0', tied: false, seed: 16, tol: QUANT_TOL },
  { ...base, label: 'MQA q4_0 tied', dim: 64, heads: 4, kvHeads: 1, ffn: 96, type: 'q4_0', tied: true, seed: 17, tol: QUANT_TOL },
  { ...base, label: 'MHA q4_K untied', dim: 256, layers: 1, heads: 4, kvHeads: 4, ffn: 256, type: 'q4_K', tied: false, seed: 19, tol: QUANT_TOL },
];
