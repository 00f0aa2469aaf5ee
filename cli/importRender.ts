// The text of an imported spec: the llama block, plus the lines each family adds
// (q/k/v biases, per-head q/k norms, NEOX RoPE, a sliding window). Every number in
// it was validated by importSpec.ts; names are sanitised there.
import { f32Literal, type Family, type GemmaFacts } from './importSpec.ts';

export interface SpecFacts {
  name: string; source: string; vocab: number; dim: number; layers: number; heads: number; kvHeads: number;
  headDim: number; ffn: number; theta: number; eps: number; maxContext: number; eos: number | undefined; tied: boolean;
  experts: number; expertsUsed: number; notes: readonly string[]; family: Family;
  /** Sliding window of every layer's attention (0: none); Gemma 2: of the layers its pattern names. */
  window: number;
  gemma: GemmaFacts | undefined;
  /** The shared expert's width (Qwen2-MoE), else 0. */
  sharedFfn: number;
  /** Mixtral-style experts' top-k weights are not renormalised (Qwen3-MoE's norm_topk_prob = false). */
  noRenorm?: boolean;
  /** Imported from a Hugging Face checkpoint (the loader maps the params' GGUF names to its tensors). */
  hf?: boolean;
}

export function renderSpec(s: SpecFacts): string {
  const f = s.family;
  const attn = s.kvHeads === s.heads ? 'multi-head' : s.kvHeads === 1 ? 'multi-query' : `grouped-query (${s.heads / s.kvHeads} query heads per KV head)`;
  const moe = s.experts > 0;
  const sharedParams = f.sharedExpert ? `
      ffn_gate_inp_shexp: [dim, 1]
      ffn_gate_shexp: [dim, shared_ffn]
      ffn_up_shexp: [dim, shared_ffn]
      ffn_down_shexp: [shared_ffn, dim]` : '';
  const ffnParams = f.fused
    ? `      ffn_up: [dim, 2 * ffn]
      ffn_down: [ffn, dim]`
    : moe
    ? `      ffn_gate_inp: [dim, experts]
      ffn_gate_exps: [dim, ffn, experts]
      ffn_up_exps: [dim, ffn, experts]
      ffn_down_exps: [ffn, dim, experts]`
    : `      ffn_gate: [dim, ffn]
      ffn_up: [dim, ffn]
      ffn_down: [ffn, dim]`;
  const ffnBody = f.sharedExpert ? `    # Qwen2-MoE: softmax over the router logits, top-k, not renormalised; plus a shared
    # expert scaled per token by sigmoid(h @ ffn_gate_inp_shexp) ([T, 1], repeated along the row).
    r = topk(softmax(h @ ffn_gate_inp), k = top_k, renorm = false)
    shared = (silu(h @ ffn_gate_shexp) * (h @ ffn_up_shexp)) @ ffn_down_shexp
    return x + moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down } + sigmoid(h @ ffn_gate_inp_shexp) * shared`
    : moe
    ? `    # Mixture of experts${s.noRenorm ? ': softmax over all router logits, top-k, not renormalised (norm_topk_prob = false).' : ' as llama.cpp runs it: softmax over all router logits, top-k, renormalised.'}
    r = topk(softmax(h @ ffn_gate_inp), k = top_k${s.noRenorm ? ', renorm = false' : ''})
    return x + moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down }`
    : s.gemma ? '    return x + rmsnorm((gelu(h @ ffn_gate) * (h @ ffn_up)) @ ffn_down, post_ffw_norm, eps = norm_eps)'
    : f.fused ? '    gu = h @ ffn_up\n    return x + (silu(slice(gu, 0, ffn)) * slice(gu, ffn, ffn)) @ ffn_down'
    : '    return x + (silu(h @ ffn_gate) * (h @ ffn_up)) @ ffn_down';
  // What the family adds to the llama block.
  const extraParams = [
    ...(f.qkvBias ? ['attn_q_bias: [heads * head_dim]', 'attn_k_bias: [kv_heads * head_dim]', 'attn_v_bias: [kv_heads * head_dim]'] : []),
    ...(f.qkNorm ? ['attn_q_norm: [head_dim]', 'attn_k_norm: [head_dim]'] : []),
    ...(f.gemma ? ['post_attention_norm: [dim]', 'post_ffw_norm: [dim]'] : []),
  ].map((p) => `      ${p}\n`).join('');
  const g = s.gemma;
  // Gemma 2's pattern 2 puts the window on even layers: window 0 (none) on odd ones.
  const windowArg = s.window === 0 ? '' : g && g.period === 2 ? ', window = sliding_window * (1 - layer_index % 2)' : ', window = sliding_window';
  const scaleArg = g?.scaleByDim ? ', scale = 1 / sqrt(dim / heads)' : g?.queryScalar !== undefined ? `, scale = 1 / sqrt(${f32Literal(g.queryScalar)})` : '';
  const attnArgs = `${windowArg}${scaleArg}${g ? ', softcap = attn_softcap' : ''}`;
  const attnOut = 'reshape(attention(q, cache(k, v), causal' + attnArgs + '), [T, heads * head_dim]) @ attn_output';
  const proj = (w: string, heads: string) => {
    const y = `reshape(h @ attn_${w}${f.qkvBias ? ` + attn_${w}_bias` : ''}, [T, ${heads}, head_dim])`;
    return f.qkNorm && w !== 'v' ? `rmsnorm(${y}, attn_${w}_norm, eps = norm_eps)` : y;
  };
  const rope = (x: string) => `rope(${x}, theta = rope_theta${f.neox ? ', neox = true' : ''})`;
  const attnParams = f.fused ? '      attn_qkv: [dim, (heads + 2 * kv_heads) * head_dim]' : `      attn_q: [dim, heads * head_dim]
      attn_k: [dim, kv_heads * head_dim]
      attn_v: [dim, kv_heads * head_dim]`;
  const part = (start: string, len: string, heads: string) => `reshape(slice(qkv, ${start}, ${len}), [T, ${heads}, head_dim])`;
  const qkvLines = f.fused ? `    qkv = h @ attn_qkv
    q = ${rope(part('0', 'heads * head_dim', 'heads'))}
    k = ${rope(part('heads * head_dim', 'kv_heads * head_dim', 'kv_heads'))}
    v = ${part('(heads + kv_heads) * head_dim', 'kv_heads * head_dim', 'kv_heads')}` : `    q = ${rope(proj('q', 'heads'))}
    k = ${rope(proj('k', 'kv_heads'))}
    v = ${proj('v', 'kv_heads')}`;
  const notes = [
    ...(f.qkvBias ? ['# q, k and v projections carry biases (attn_q_bias binds blk.N.attn_q.bias).'] : []),
    ...(f.qkNorm ? ['# q and k are RMS-normalised per head (weights [head_dim]) before RoPE.'] : []),
    ...(f.neox ? ['# RoPE rotates halves (x[i], x[i + head_dim/2]): llama.cpp\'s NEOX style.'] : []),
    ...(f.fused ? ['# One fused q/k/v projection and one fused gate/up projection, split by slicing.'] : []),
    ...(s.window > 0 && !g ? [`# Sliding window: each token attends to the last ${s.window} positions (llama.cpp runs llama files with full attention).`] : []),
    ...(g ? [
      `# Gemma 2: ${g.period === 2 ? 'even layers attend to the last sliding_window positions, odd layers to all' : 'every layer attends to the last sliding_window positions'};`,
      '# attention logits are soft-capped (attn_softcap * tanh(s / attn_softcap)); norms also follow attention and the FFN.',
      ...(s.hf ? ["# The checkpoint stores Gemma's norm weights as w for x * (1 + w): the loader adds 1 (llama.cpp's converter does too)."] : []),
    ] : []),
  ].map((l) => `    ${l}\n`).join('');
  return `# Imported from ${s.source} by \`infer import\`: ${f.arch} architecture, ${attn} attention,${moe ? ` ${s.experts} experts (top-${s.expertsUsed}),` : ''}
# ${s.tied ? 'output tied to the token embeddings' : 'separate output matrix'}. Run it with: infer run SPEC --weights ${s.source}
# Parameter shapes are in ggml order [in, out]; ${s.hf ? "params have GGUF names; the loader binds each to the checkpoint's tensor\n# (blk.N.attn_q -> model.layers.N.self_attn.q_proj.weight), converting as llama.cpp's converter does." : 'tensors bind by GGUF name (blk.N.attn_q -> blk.N.attn_q.weight).'}
${s.notes.map((n) => `# Note: ${n}.\n`).join('')}
model ${s.name} {
  config {
    vocab = ${s.vocab}; dim = ${s.dim}; layers = ${s.layers}; heads = ${s.heads}; kv_heads = ${s.kvHeads}
    head_dim = ${s.headDim}; ffn = ${s.ffn}; rope_theta = ${f32Literal(s.theta)}; norm_eps = ${f32Literal(s.eps)}
    max_context = ${s.maxContext}${s.eos !== undefined ? `; eos = ${s.eos}` : ''}${moe ? `\n    experts = ${s.experts}; top_k = ${s.expertsUsed}${f.sharedExpert ? `; shared_ffn = ${s.sharedFfn}` : ''}` : ''}${s.window > 0 ? `\n    sliding_window = ${s.window}` : ''}${g ? `\n    attn_softcap = ${f32Literal(g.attnSoftcap)}; final_softcap = ${f32Literal(g.finalSoftcap)}` : ''}
  }

  kv_cache { layout = contiguous; dtype = f32 }

  weights gguf

  params {
    token_embd: [dim, vocab]
    output_norm: [dim]${s.tied ? '' : '\n    output: [dim, vocab]'}
  }

  x = embed(tokens, token_embd)${g ? ' * sqrt(dim)' : ''}

  layer block (x: [T, dim]) -> [T, dim] {
    params {
      attn_norm: [dim]
${attnParams}
      attn_output: [heads * head_dim, dim]
${extraParams}      ffn_norm: [dim]
${ffnParams}${sharedParams}
    }
${notes}    h = rmsnorm(x, attn_norm, eps = norm_eps)
${qkvLines}
    x = x + ${g ? `rmsnorm(${attnOut}, post_attention_norm, eps = norm_eps)` : attnOut}
    h = rmsnorm(x, ffn_norm, eps = norm_eps)
${ffnBody}
  }

  logits = ${g ? 'softcap(' : ''}rmsnorm(x, output_norm, eps = norm_eps) @ ${s.tied ? 'token_embd' : 'output'}${g ? ', final_softcap)' : ''}
}
`;
}
