// The Hugging Face config.json of a llama-shaped Program (bench/gpu/llama-1b.infer), which
// bench/gpu/run.py puts beside the runner's `--write-hf` weights so transformers'
// LlamaForCausalLM builds the same model: sizes from the Program, the FFN width from
// blk.0.ffn_gate's shape, norm_eps and rope_theta from the spec's config constants.
import type { Program } from '../../program/program.ts';

export function hfLlamaConfig(program: Program): Record<string, unknown> {
  const m = program.model, c = m.constants;
  const gate = program.params.find((p) => p.name === 'blk.0.ffn_gate');
  if (!gate || gate.shape.length !== 2) throw new Error(`${m.name}: no blk.0.ffn_gate [dim, ffn] param, so not a llama shape transformers can build`);
  if (c.norm_eps === undefined || c.rope_theta === undefined) throw new Error(`${m.name}: the config needs norm_eps and rope_theta for the HF config`);
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'float32',
    vocab_size: m.vocab, hidden_size: m.dim, intermediate_size: gate.shape[1], num_hidden_layers: m.layers,
    num_attention_heads: m.heads, num_key_value_heads: m.kvHeads, head_dim: m.headDim,
    rms_norm_eps: c.norm_eps, rope_theta: c.rope_theta, max_position_embeddings: m.maxContext,
    tie_word_embeddings: !program.params.some((p) => p.name === 'output'),
    hidden_act: 'silu', attention_bias: false, mlp_bias: false, bos_token_id: 1, eos_token_id: m.eos ?? 2,
  };
}
