// MoE decode on WebGPU, side by side with two dense models built from the same
// attention: one whose FFN has the MoE's *active* parameters (ffn = top_k * F) and
// one with its *total* parameters (ffn = experts * F). A MoE step should cost about
// what the dense-active one does, far less than dense-total: it reads only the chosen
// experts. Bytes per token come from the Program (compiler/cost.ts: for a one-token
// step a moe_experts kernel reads exactly top_k experts); times are measured.
//   node --import tsx bench/moe.ts     (writes bench/results/moe.{md,json})
import { compileSpec } from '../compiler/compile.ts';
import { decodeMinimumBytes, forwardCost, paramBytes } from '../compiler/cost.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { generate } from '../runtime/engine.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { runBench, writeResults } from './report.ts';

const SIZE = { vocab: 2048, dim: 256, layers: 4, heads: 8, kvHeads: 2, experts: 8, topK: 2, ffn: 512 };
const PROMPT = Array.from({ length: 8 }, (_, i) => (i * 37 + 11) % SIZE.vocab);
const TOKENS = Number(process.env.INFER_BENCH_TOKENS ?? 32);
const ROUNDS = Number(process.env.INFER_BENCH_ROUNDS ?? 3);
const log = (s: string) => process.stderr.write(s + '\n');

function spec(name: string, ffnBlock: string, ffnParams: string): string {
  const s = SIZE;
  return `model ${name} {
  config { vocab = ${s.vocab}; dim = ${s.dim}; layers = ${s.layers}; heads = ${s.heads}; kv_heads = ${s.kvHeads}; head_dim = dim / heads
           experts = ${s.experts}; top_k = ${s.topK}; max_context = 256 }
  weights random(seed = 5)
  params { token_embd: [dim, vocab]; output_norm: [dim]; output: [dim, vocab] }
  x = embed(tokens, token_embd)
  layer block (x: [T, dim]) -> [T, dim] {
    params {
      attn_norm: [dim]; attn_q: [dim, dim]; attn_k: [dim, kv_heads * head_dim]; attn_v: [dim, kv_heads * head_dim]; attn_output: [dim, dim]
      ffn_norm: [dim]
      ${ffnParams}
    }
    h = rmsnorm(x, attn_norm)
    q = rope(reshape(h @ attn_q, [T, heads, head_dim]))
    k = rope(reshape(h @ attn_k, [T, kv_heads, head_dim]))
    v = reshape(h @ attn_v, [T, kv_heads, head_dim])
    x = x + reshape(attention(q, cache(k, v), causal), [T, dim]) @ attn_output
    h = rmsnorm(x, ffn_norm)
    ${ffnBlock}
  }
  logits = rmsnorm(x, output_norm) @ output
}`;
}

const dense = (name: string, ffn: number) => spec(name, 'return x + (silu(h @ ffn_gate) * (h @ ffn_up)) @ ffn_down',
  `ffn_gate: [dim, ${ffn}]; ffn_up: [dim, ${ffn}]; ffn_down: [${ffn}, dim]`);
const MOE_TEXT = () => spec('Moe', 'r = topk(softmax(h @ ffn_gate_inp), k = top_k)\n    return x + moe(h, r, experts) { e => (silu(h @ e.ffn_gate) * (h @ e.ffn_up)) @ e.ffn_down }',
    `ffn_gate_inp: [dim, experts]; ffn_gate_exps: [dim, ${SIZE.ffn}, experts]; ffn_up_exps: [dim, ${SIZE.ffn}, experts]; ffn_down_exps: [${SIZE.ffn}, dim, experts]`);
const MODELS: { label: string; text: string; noFuse?: Set<string> }[] = [
  { label: `MoE ${SIZE.experts} experts, top-${SIZE.topK}, ffn ${SIZE.ffn}`, text: MOE_TEXT() },
  { label: 'same MoE, --no-fuse moe (dense: every expert)', text: MOE_TEXT(), noFuse: new Set(['moe']) },
  { label: `dense, same active params (ffn ${SIZE.topK * SIZE.ffn})`, text: dense('DenseActive', SIZE.topK * SIZE.ffn) },
  { label: `dense, same total params (ffn ${SIZE.experts * SIZE.ffn})`, text: dense('DenseTotal', SIZE.experts * SIZE.ffn) },
];

interface Row { model: string; params_m: number; dispatches: number; ms_per_token: number; ms_rounds: number[]; tokens_per_s: number; mb_read_per_token: number; min_mb_per_token: number; imbalance: string }

async function main(): Promise<void> {
  const device = await createGpuDevice();
  const built = [];
  for (const m of MODELS) {
    const c = compileSpec(m.text, 'bench-moe.infer', { noFuse: m.noFuse });
    if (!c.program || !c.graph) throw new Error(`${m.label}: ${c.diagnostics.map((d) => d.message).join('; ')}`);
    const p = c.program;
    const weights = new RandomWeights(c.graph.params, 5);
    log(`${m.label}: ${(paramBytes(p) / 4e6).toFixed(2)}M params, ${p.steps.length} dispatches/token`);
    const engine = await WebGpuEngine.create({ device, program: p, backend: wgslBackend, weights });
    await generate(engine, PROMPT.slice(0, 2), { maxTokens: 2, ignoreEos: true }); // warm-up: pipelines, caches
    // Routing balance from a separate stats-collecting engine (its readback would add to the timed steps).
    let imbalance = '-';
    if (p.steps.some((s) => s.kernel.startsWith('moe_route')) && !m.noFuse) {
      const e2 = await WebGpuEngine.create({ device, program: p, backend: wgslBackend, weights, moeStats: true });
      await generate(e2, PROMPT, { maxTokens: TOKENS + 1, ignoreEos: true });
      imbalance = e2.moeStats()!.layers.map((l) => l.imbalance.toFixed(2)).join(' / ');
      e2.dispose();
    }
    built.push({ m, p, engine, imbalance, ms: [] as number[] });
  }
  // Rounds over the models in turn; the best round per model is reported, since the
  // machine is shared and interference only ever slows a round down.
  for (let round = 0; round < ROUNDS; round++) {
    for (const b of built) {
      const r = await generate(b.engine, PROMPT, { maxTokens: TOKENS + 1, ignoreEos: true });
      b.ms.push(1000 / r.stats.tokens_per_s);
      log(`  round ${round + 1}: ${b.m.label}: ${b.ms.at(-1)!.toFixed(2)} ms/token`);
    }
  }
  const rows: Row[] = built.map(({ m, p, engine, imbalance, ms }) => {
    engine.dispose();
    let bytes = 0, min = 0;
    for (let i = 0; i < TOKENS; i++) { bytes += forwardCost(p, 1, PROMPT.length + 1 + i).bytesRead; min += decodeMinimumBytes(p, PROMPT.length + 1 + i); }
    const best = Math.min(...ms);
    return {
      model: m.label, params_m: paramBytes(p) / 4e6, dispatches: p.steps.length, ms_per_token: best, ms_rounds: ms,
      tokens_per_s: 1000 / best, mb_read_per_token: bytes / TOKENS / 1e6, min_mb_per_token: min / TOKENS / 1e6, imbalance,
    };
  });
  device.destroy();
  const md = [
    `# MoE decode vs dense (WebGPU, lavapipe), f32`,
    '',
    `dim ${SIZE.dim}, ${SIZE.layers} layers, ${SIZE.heads} heads / ${SIZE.kvHeads} KV heads, vocab ${SIZE.vocab}; prompt ${PROMPT.length}, decode ${TOKENS} tokens (greedy); ms/tok is the best of ${ROUNDS} interleaved rounds.`,
    '',
    '| model | params (M) | dispatches/tok | ms/tok | tok/s | MB read/tok | min MB/tok | routing max/mean per layer |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.model} | ${r.params_m.toFixed(2)} | ${r.dispatches} | ${r.ms_per_token.toFixed(2)} | ${r.tokens_per_s.toFixed(1)} | ${r.mb_read_per_token.toFixed(2)} | ${r.min_mb_per_token.toFixed(2)} | ${r.imbalance} |`),
    '',
    'MB read/tok: the Program cost model (a one-token moe_experts step reads exactly top_k experts); min: every weight a step needs once plus the live KV.',
  ].join('\n');
  writeResults('moe', { size: SIZE, prompt: PROMPT.length, tokens: TOKENS, rounds: ROUNDS, rows }, md);
}

runBench('moe', main);
