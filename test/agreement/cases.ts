// The random llama files of the agreement suite and the tolerance each must meet.
//
// The tolerance is on |logprob_infer - logprob_llama.cpp| for every token of the
// vocabulary at every position (where llama.cpp's f32 probability is above 1e-30,
// i.e. not lost to underflow): |delta| <= abs + rel * |logprob_llama.cpp|.
//   EXACT (abs 1e-4, rel 0): f32 files, and files whose only non-f32 matrix is
//     token_embd: llama.cpp reads it with get_rows, which dequantises exactly as
//     infer does, so these cases check infer's f16/bf16/q8_0/q4_0/q4_K/q5_K/q6_K
//     decoding against llama.cpp's own dequantisation (to the 1e-4 a logprob
//     can show; test/weights/kquant.test.ts has the bit-for-bit check against an
//     independent decoder of the format). Measured: about 2e-6.
//   f16 everywhere (rel 3e-3): some of llama.cpp's CPU f16 matmul paths round the
//     activations to f16 first (2^-11 relative) and infer keeps them f32; which
//     path runs depends on the shapes (the untied MQA file measures 2e-6, the
//     tied GQA one 9e-3 at logprob -10, i.e. rel 8.6e-4).
//   bf16 everywhere (rel 4e-2): likewise with bf16 activations (2^-8); measured rel 1.2e-2.
//   q8_0, q4_0, q4_K, q5_K, q6_K everywhere, and a Q4_K_M-style mix of q4_K and q6_K
//     (rel 4e-2): llama.cpp quantises the activations to q8_0 / q8_K blocks for its
//     integer dot products; infer dequantises the weights (exactly, see above) and
//     keeps f32 activations: the CPU engine at load, the WebGPU engine in its kernels
//     (the blocks, and f16 values, stay on the device). Measured rel 1e-2 to 1.5e-2.
// The error grows with |logprob| because these roundings are relative errors of the
// logits: the tied files have logits of std ~8 and tails near logprob -70.
import type { GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';

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

// Other llama-family architectures (import maps each to the llama block plus its
// additions); f32 files, so exact as the llama f32 cases.
export const FAMILY_CASES: AgreementCase[] = [
  { ...base, label: 'qwen2 f32 GQA', arch: 'qwen2', dim: 64, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', tied: false, seed: 41, theta: 1000000, eps: 1e-6, tol: EXACT },
  { ...base, label: 'qwen2 f32 MQA tied', arch: 'qwen2', dim: 48, heads: 6, kvHeads: 1, ffn: 96, type: 'f32', tied: true, seed: 42, tol: EXACT },
  { ...base, label: 'qwen3 f32 GQA, head_dim 16', arch: 'qwen3', dim: 48, heads: 4, kvHeads: 2, headDim: 16, ffn: 96, type: 'f32', tied: false, seed: 43, theta: 1000000, eps: 1e-6, tol: EXACT },
  { ...base, label: 'qwen3 f32 MQA tied', arch: 'qwen3', dim: 64, heads: 4, kvHeads: 1, ffn: 128, type: 'f32', tied: true, seed: 44, tol: EXACT },
  // Phi-3: fused attn_qkv and gate/up ffn_up; a sliding-window key llama.cpp (and the import) ignore.
  // (A general.name containing "phi3" makes llama.cpp look up Phi-3's <|endoftext|>, absent here.)
  // Qwen3-MoE: q/k norms, NEOX RoPE and 8 experts, top-2 renormalised.
  { ...base, label: 'qwen3moe f32 8 experts top-2', arch: 'qwen3moe', dim: 64, heads: 4, kvHeads: 2, ffn: 32, experts: 8, expertsUsed: 2, type: 'f32', tied: false, seed: 46, tol: EXACT },
  // Qwen2-MoE: q/k/v biases, NEOX RoPE, 4 experts top-2 not renormalised, and a shared expert
  // (width 48) scaled per token by a sigmoid gate.
  { ...base, label: 'qwen2moe f32 4 experts top-2 + shared', arch: 'qwen2moe', dim: 64, heads: 4, kvHeads: 2, ffn: 32, sharedFfn: 48, experts: 4, expertsUsed: 2, type: 'f32', tied: false, seed: 47, tol: EXACT },
  { ...base, label: 'phi3 f32 GQA, fused qkv and gate/up', arch: 'phi3', name: 'random fused-projection model', dim: 64, heads: 4, kvHeads: 2, ffn: 96, type: 'f32', tied: false, seed: 45, window: 8, tol: EXACT },
];

// Gemma 2: llama.cpp's CPU GELU reads a table of f16 values at the f16 rounding of its
// input (ggml's GGML_GELU_FP16), so even f32 files agree only to f16 rounding of the FFN
// activations (relative 2^-11 per element); infer computes GELU in f32 / float64.
// Small soft-caps (2 and 5 instead of Gemma's 50 and 30) so the caps shape the random
// model's distributions, and windows of 4 (shorter than the 8-token prompt) and 16 under a 72-token sequence: even layers
// windowed, odd layers full.
export const GEMMA_TOL: Tolerance = { abs: 1e-3, rel: 3e-3 };
export const GEMMA_CASES: AgreementCase[] = [
  { ...base, label: 'gemma2 f32 GQA, window 4', arch: 'gemma2', dim: 64, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', tied: true, seed: 51, window: 4, attnSoftcap: 2, finalSoftcap: 5, tol: GEMMA_TOL },
  { ...base, label: 'gemma2 f32 MQA 3 layers, head_dim 32, window 16', arch: 'gemma2', dim: 48, layers: 3, heads: 2, kvHeads: 1, headDim: 32, ffn: 96, type: 'f32', tied: true, seed: 52, window: 16, attnSoftcap: 2, finalSoftcap: 5, tol: GEMMA_TOL },
];

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
  { ...base, label: 'token_embd q5_K', dim: 256, layers: 1, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', embdType: 'q5_K', tied: false, seed: 50, tol: EXACT },
  { ...base, label: 'token_embd q6_K', dim: 256, layers: 1, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', embdType: 'q6_K', tied: false, seed: 51, tol: EXACT },
  { ...base, label: 'GQA q5_K untied', dim: 256, layers: 1, heads: 4, kvHeads: 2, ffn: 256, type: 'q5_K', tied: false, seed: 52, tol: QUANT_TOL },
  { ...base, label: 'GQA q6_K untied', dim: 256, layers: 1, heads: 4, kvHeads: 2, ffn: 256, type: 'q6_K', tied: false, seed: 53, tol: QUANT_TOL },
  // Q4_K_M's mix (runtime/weights/randomLlamaGguf.ts tensorTypeIn): q6_K output and
  // attn_v / ffn_down in layers 0 and 2 (llama.cpp's use_more_bits of 3), q4_K elsewhere.
  { ...base, label: 'Q4_K_M mix (q4_K + q6_K) untied', dim: 256, layers: 3, heads: 4, kvHeads: 2, ffn: 256, type: 'q4_K_M', tied: false, seed: 54, tol: QUANT_TOL },
  // Mixtral-style MoE with q8_0 / q4_0 expert tensors (ffn a multiple of 32, as ggml
  // requires of ffn_down_exps' K): WebGPU keeps the experts as blocks for moe_experts.
  // Seed-dependent, unlike the dense cases' bound: llama.cpp's q8_0 activations move the
  // router logits by about the bound, and at a near-tie between the k-th and the next
  // expert that picks another expert (a jump in the output, not a rounding difference);
  // and the decode check follows infer's own greedy path, so it needs all 64 greedy
  // tokens equal. top_k = experts cannot flip a choice (routing weights stay continuous);
  // the top-2 seed is one whose 72 positions x 2 layers have no such near-tie (of seeds
  // 40..51 about a third qualify; measured prefill 5e-2, ratio 0.2 of the bound).
  { ...base, label: 'MoE q8_0 4 experts top-4, MQA', dim: 64, heads: 4, kvHeads: 1, ffn: 64, experts: 4, expertsUsed: 4, type: 'q8_0', tied: false, seed: 26, tol: QUANT_TOL },
  { ...base, label: 'MoE q4_0 8 experts top-2, GQA', dim: 64, heads: 4, kvHeads: 2, ffn: 96, experts: 8, expertsUsed: 2, type: 'q4_0', tied: false, seed: 45, tol: QUANT_TOL },
];

// Mixtral-style f32 files whose routers copy columns (test/agreement/moeTies.test.ts):
// expert e's router column in layer l is column copies[l][e] (its own when equal), so
// experts with the same source get bit-identical logits in both implementations and
// the top-k rule for equal scores decides which of them run. llama.cpp's CPU argsort is
// libstdc++'s std::sort: index order among equal scores for E <= 16, introsort's order
// above. Above 16, llama.cpp's own scores tie only within [0, 16) or within [16, E):
// its softmax takes exp with SIMD over whole vector widths (8 or 16 lanes) and libm's
// expf for the rest, which differ in the last bit, so no copy crosses index 16 there.
export interface TiedRouterCase extends AgreementCase {
  readonly experts: number; readonly expertsUsed: number;
  /** Per layer: the router column each expert copies. */
  readonly copies: readonly (readonly number[])[];
}

const tiedBase = { vocab: 288, layers: 2, ctx: 128, dim: 32, heads: 4, kvHeads: 2, ffn: 24, type: 'f32', tied: false, tol: EXACT } as const;
const both = (c: readonly number[]) => [c, c];

export const TIED_ROUTER_CASES: TiedRouterCase[] = [
  // Expert 1 copies 0: in rows like [2, 2, 3, 1] (2 or 3 highest, 0 = 1 next) index
  // order picks 0; an exchange sort, as in older ggml, would pick 1.
  { ...tiedBase, label: 'E4 top-2, expert 1 = 0', experts: 4, expertsUsed: 2, copies: both([0, 0, 2, 3]), seed: 22 },
  { ...tiedBase, label: 'E4 top-3, experts 2 and 3 = 1', experts: 4, expertsUsed: 3, copies: both([0, 1, 1, 1]), seed: 24 },
  { ...tiedBase, label: 'E8 top-1, mirrored pairs', experts: 8, expertsUsed: 1, copies: both([0, 1, 2, 3, 3, 2, 1, 0]), seed: 28 },
  { ...tiedBase, label: 'E7 top-3, a triple and a pair', experts: 7, expertsUsed: 3, copies: both([0, 1, 0, 3, 0, 5, 1]), seed: 29 },
  { ...tiedBase, label: 'E8 top-2, other pairs per layer', experts: 8, expertsUsed: 2, copies: [[0, 1, 2, 1, 4, 2, 6, 4], [0, 0, 2, 2, 4, 4, 6, 6]], seed: 30 },
  // Introsort's order: not index order among equal scores.
  { ...tiedBase, label: 'E32 top-3, 5 distinct columns', experts: 32, expertsUsed: 3, copies: both(Array.from({ length: 32 }, (_, e) => e % 5)), seed: 31 },
  { ...tiedBase, label: 'E64 top-4, 9 distinct columns', experts: 64, expertsUsed: 4, copies: both(Array.from({ length: 64 }, (_, e) => e % 9)), seed: 37 },
  { ...tiedBase, label: 'E20 top-2, copies within 0..15 and 16..19', experts: 20, expertsUsed: 2, copies: both(Array.from({ length: 20 }, (_, e) => (e < 16 ? e % 3 : 16 + (e % 2)))), seed: 34 },
];
