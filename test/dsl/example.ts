// The example model from the language description, verbatim (comments
// included), so the location assertions in the tests can be checked by eye.
export const EXAMPLE = `# comments run to end of line
model TinyLlama {
  config {
    vocab = 256; dim = 64; layers = 2; heads = 4; kv_heads = 2
    head_dim = dim / heads            # integer/float expressions over EARLIER constants: + - * / % parentheses, unary minus
    ffn = 172; rope_theta = 10000.0; norm_eps = 1e-5; max_context = 512; eos = 2
  }
  kv_cache { layout = contiguous; dtype = f32 }          # also: layout = paged(page = 16); dtype = int8; window = 4096
  weights random(seed = 7)                               # or: weights gguf   (a binding name with optional named args)
  params {                                                # global tensors, shapes in ggml order [in, out]
    token_embd: [dim, vocab]
    output_norm: [dim]
    output: [dim, vocab]
  }
  x = embed(tokens, token_embd)                          # model-level statements run in order; \`tokens\` is the builtin input [T]
  layer block (x: [T, dim]) -> [T, dim] {                 # applied \`layers\` times at this point: x = block(block(...x))
    params { attn_norm: [dim]; attn_q: [dim, heads * head_dim]; attn_k: [dim, kv_heads * head_dim]
             attn_v: [dim, kv_heads * head_dim]; attn_output: [heads * head_dim, dim]
             ffn_norm: [dim]; ffn_gate: [dim, ffn]; ffn_up: [dim, ffn]; ffn_down: [ffn, dim] }
    h = rmsnorm(x, attn_norm, eps = norm_eps)
    q = rope(reshape(h @ attn_q, [T, heads, head_dim]), theta = rope_theta)
    k = rope(reshape(h @ attn_k, [T, kv_heads, head_dim]), theta = rope_theta)
    v = reshape(h @ attn_v, [T, kv_heads, head_dim])
    x = x + reshape(attention(q, cache(k, v), causal), [T, heads * head_dim]) @ attn_output
    h = rmsnorm(x, ffn_norm, eps = norm_eps)
    return x + (silu(h @ ffn_gate) * (h @ ffn_up)) @ ffn_down
  }
  logits = rmsnorm(x, output_norm, eps = norm_eps) @ output
}
`;

/** Wraps statements in a minimal valid model (it must assign logits). */
export const wrap = (body: string): string => `model M {\n${body}\n  logits = x\n}\n`;
