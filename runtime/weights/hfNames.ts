// Hugging Face tensor names for a spec's params (which carry GGUF's names: blk.N.attn_q,
// ...), per model family, and what else a family's checkpoint stores differently from the
// GGUF file llama.cpp's converter makes of it:
//
//   - llama, Mistral, Mixtral: HF's q_proj / k_proj rows are in rotate-half order; GGUF's
//     (and infer's interleaved RoPE) pair adjacent dimensions, so the rows are reordered
//     (hfLlama.ts ropePermuteRows). Qwen2/3, Phi-3 and Gemma 2 run NEOX RoPE in llama.cpp,
//     which is rotate-half: their rows load as they are.
//   - Gemma 2: RMSNorm multiplies by (1 + w) and the checkpoint stores w; GGUF stores 1 + w
//     (the converter adds 1 to every *norm.weight), which is what an imported spec's plain
//     rmsnorm expects. Its post_attention_layernorm is the norm after attention (GGUF
//     post_attention_norm), pre_feedforward_layernorm the one before the FFN (ffn_norm);
//     elsewhere post_attention_layernorm is the pre-FFN norm.
//   - Phi-3: ffn_up binds the fused mlp.gate_up_proj (gate rows first), attn_qkv qkv_proj.
//   - Mixtral's experts are block_sparse_moe.experts.E.w1/w3/w2; Qwen's MoE names them
//     mlp.experts.E.gate_proj/up_proj/down_proj, its router mlp.gate, its shared expert
//     mlp.shared_expert.* and the shared expert's gate mlp.shared_expert_gate.
// Layouts need no transpose: an HF Linear weight [out, in] row-major is ggml's [in, out].

/** How one HF architecture (config.json `architectures[0]`) maps onto a GGUF architecture. */
export interface HfFamily {
  /** The GGUF architecture whose spec the checkpoint runs (cli/importSpec.ts FAMILIES). */
  readonly arch: string;
  /** q/k rows are reordered from rotate-half to adjacent pairs (llama-style GGUF RoPE). */
  readonly permuteQK: boolean;
  /** Norm weights are stored as w for (1 + w) (Gemma): the loader adds 1. */
  readonly normPlusOne: boolean;
  readonly experts: 'mixtral' | 'qwen' | 'none';
  /** Gemma 2's four norms per layer. */
  readonly gemmaNorms: boolean;
  /** Phi-3's fused qkv_proj and gate_up_proj. */
  readonly fused: boolean;
}

const plain = { permuteQK: false, normPlusOne: false, experts: 'none', gemmaNorms: false, fused: false } as const;
export const LLAMA_HF: HfFamily = { ...plain, arch: 'llama', permuteQK: true, experts: 'mixtral' };

export const HF_FAMILIES: Readonly<Record<string, HfFamily>> = {
  LlamaForCausalLM: LLAMA_HF,
  MistralForCausalLM: LLAMA_HF,
  MixtralForCausalLM: LLAMA_HF,
  Qwen2ForCausalLM: { ...plain, arch: 'qwen2' },
  Qwen3ForCausalLM: { ...plain, arch: 'qwen3' },
  Gemma2ForCausalLM: { ...plain, arch: 'gemma2', normPlusOne: true, gemmaNorms: true },
  Phi3ForCausalLM: { ...plain, arch: 'phi3', fused: true },
  Qwen2MoeForCausalLM: { ...plain, arch: 'qwen2moe', experts: 'qwen' },
  Qwen3MoeForCausalLM: { ...plain, arch: 'qwen3moe', experts: 'qwen' },
};

export const HF_ARCHITECTURE_NAMES = Object.keys(HF_FAMILIES).join(', ');

const TOP: Readonly<Record<string, string>> = { token_embd: 'model.embed_tokens', output_norm: 'model.norm', output: 'lm_head' };
const LAYER: Readonly<Record<string, string>> = {
  attn_norm: 'input_layernorm', attn_q: 'self_attn.q_proj', attn_k: 'self_attn.k_proj', attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj', ffn_norm: 'post_attention_layernorm', ffn_gate: 'mlp.gate_proj', ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj', attn_q_norm: 'self_attn.q_norm', attn_k_norm: 'self_attn.k_norm',
};
const GEMMA_LAYER: Readonly<Record<string, string>> = {
  ffn_norm: 'pre_feedforward_layernorm', post_attention_norm: 'post_attention_layernorm', post_ffw_norm: 'post_feedforward_layernorm',
};
const FUSED_LAYER: Readonly<Record<string, string>> = { attn_qkv: 'self_attn.qkv_proj', ffn_up: 'mlp.gate_up_proj' };
const MIXTRAL_LAYER: Readonly<Record<string, string>> = { ffn_gate_inp: 'block_sparse_moe.gate' };
const QWEN_MOE_LAYER: Readonly<Record<string, string>> = {
  ffn_gate_inp: 'mlp.gate', ffn_gate_inp_shexp: 'mlp.shared_expert_gate',
  ffn_gate_shexp: 'mlp.shared_expert.gate_proj', ffn_up_shexp: 'mlp.shared_expert.up_proj', ffn_down_shexp: 'mlp.shared_expert.down_proj',
};
const EXPERT: Readonly<Record<HfFamily['experts'], Readonly<Record<string, string>>>> = {
  mixtral: { gate: 'block_sparse_moe.experts.{E}.w1', up: 'block_sparse_moe.experts.{E}.w3', down: 'block_sparse_moe.experts.{E}.w2' },
  qwen: { gate: 'mlp.experts.{E}.gate_proj', up: 'mlp.experts.{E}.up_proj', down: 'mlp.experts.{E}.down_proj' },
  none: {},
};

export interface HfBinding {
  /** The HF tensor (one), or with {E} the experts to stack (ffn_*_exps; found in the file by the loader). */
  readonly name: string;
  readonly permute?: 'heads' | 'kvHeads';
  readonly stackExperts?: true;
  /** Add 1 to every value (a Gemma norm weight). */
  readonly plusOne?: true;
}

function layerModule(f: HfFamily, t: string): string | undefined {
  const own = (m: Readonly<Record<string, string>>) => (Object.hasOwn(m, t) ? m[t] : undefined);
  return (f.gemmaNorms ? own(GEMMA_LAYER) : undefined) ?? (f.fused ? own(FUSED_LAYER) : undefined)
    ?? (f.experts === 'qwen' ? own(QWEN_MOE_LAYER) : f.experts === 'mixtral' ? own(MIXTRAL_LAYER) : undefined) ?? own(LAYER);
}

/** The HF tensor a spec param (GGUF naming) binds to in a checkpoint of family `f`; undefined when it has none. */
export function hfBinding(param: string, f: HfFamily = LLAMA_HF): HfBinding | undefined {
  const plusOne = f.normPlusOne && /(^|_)norm$/.test(param.replace(/^blk\.\d+\./, '')) ? { plusOne: true as const } : {};
  if (Object.hasOwn(TOP, param)) return { name: `${TOP[param]}.weight`, ...plusOne };
  let m = /^blk\.(\d+)\.([a-z_]+?)(_bias)?$/.exec(param);
  const module = m ? layerModule(f, m[2]) : undefined;
  if (m && module) {
    const name = `model.layers.${m[1]}.${module}.${m[3] ? 'bias' : 'weight'}`;
    const permute = f.permuteQK && m[2] === 'attn_q' ? 'heads' : f.permuteQK && m[2] === 'attn_k' ? 'kvHeads' : undefined;
    return { name, ...(permute ? { permute } : {}), ...plusOne };
  }
  const experts = EXPERT[f.experts];
  m = /^blk\.(\d+)\.ffn_(gate|up|down)\.(\d+)$/.exec(param);
  if (m && experts[m[2]]) return { name: `model.layers.${m[1]}.${experts[m[2]].replace('{E}', m[3])}.weight` };
  m = /^blk\.(\d+)\.ffn_(gate|up|down)_exps$/.exec(param);
  if (m && experts[m[2]]) return { name: `model.layers.${m[1]}.${experts[m[2]]}.weight`, stackExperts: true };
  return undefined;
}
