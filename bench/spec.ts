// Speculative decoding, side by side in one run on WebGPU: plain decode vs each
// proposer on the same target (tokens/s, target passes per token, acceptance
// rate, measured vs predicted tokens per pass), over acceptance regimes from
// none (an unrelated random draft) to high (prompt lookup on a looping,
// repetitive context), plus the cost of one target pass as a function of the
// tokens it scores, which bounds what speculation can buy on this adapter.
// Writes bench/results/spec.{json,md}; progress on stderr.
// Run: XDG_RUNTIME_DIR=/tmp node --import tsx bench/spec.ts  (INFER_BENCH_TOKENS, INFER_BENCH_REPS)
import { compileSpec, type Compiled } from '../compiler/compile.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { generate, type Engine } from '../runtime/engine.ts';
import { speculativeGenerate } from '../runtime/speculative/decode.ts';
import { DraftProposer } from '../runtime/speculative/draft.ts';
import { NgramProposer } from '../runtime/speculative/ngram.ts';
import type { Proposer } from '../runtime/speculative/proposer.ts';
import { PagedSeqModel } from '../runtime/speculative/pagedSeqModel.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { runBench, writeResults } from './report.ts';

const TOKENS = Number(process.env.INFER_BENCH_TOKENS ?? 32);
// Each timing is the best of REPS runs (token counts are deterministic); on a shared machine
// INFER_BENCH_REPS=2 steadies the ratios at about twice the run time (~2.5 min with 1).
const REPS = Number(process.env.INFER_BENCH_REPS ?? 1);
const log = (s: string) => process.stderr.write(s + '\n');

/** A llama-style spec; `scale` shrinks each layer's residual update (1 = a plain llama). */
function llama(name: string, c: { vocab: number; dim: number; layers: number; heads: number; kvHeads: number; ffn: number; seed: number; scale?: number }): string {
  const s = c.scale ?? 1;
  const upd = (e: string) => (s === 1 ? e : `${s} * (${e})`);
  return `model ${name} {
  config { vocab = ${c.vocab}; dim = ${c.dim}; layers = ${c.layers}; heads = ${c.heads}; kv_heads = ${c.kvHeads}; head_dim = dim / heads
           ffn = ${c.ffn}; rope_theta = 10000.0; norm_eps = 1e-5; max_context = 256 }
  weights random(seed = ${c.seed})
  params { token_embd: [dim, vocab]; output_norm: [dim]; output: [dim, vocab] }
  x = embed(tokens, token_embd)
  layer block (x: [T, dim]) -> [T, dim] {
    params {
      attn_norm: [dim]; attn_q: [dim, heads * head_dim]; attn_k: [dim, kv_heads * head_dim]; attn_v: [dim, kv_heads * head_dim]
      attn_output: [heads * head_dim, dim]; ffn_norm: [dim]; ffn_gate: [dim, ffn]; ffn_up: [dim, ffn]; ffn_down: [ffn, dim]
    }
    h = rmsnorm(x, attn_norm, eps = norm_eps)
    q = rope(reshape(h @ attn_q, [T, heads, head_dim]), theta = rope_theta)
    k = rope(reshape(h @ attn_k, [T, kv_heads, head_dim]), theta = rope_theta)
    v = reshape(h @ attn_v, [T, kv_heads, head_dim])
    x = x + ${upd('reshape(attention(q, cache(k, v), causal), [T, heads * head_dim]) @ attn_output')}
    h = rmsnorm(x, ffn_norm, eps = norm_eps)
    return x + ${upd('(silu(h @ ffn_gate) * (h @ ffn_up)) @ ffn_down')}
  }
  logits = rmsnorm(x, output_norm, eps = norm_eps) @ output
}
`;
}

type Ok = Compiled & { program: NonNullable<Compiled['program']>; graph: NonNullable<Compiled['graph']> };
function compile(text: string, name: string, layers?: number): Ok {
  const c = compileSpec(text, name, { layers });
  if (!c.program || !c.graph) throw new Error(`${name}: ${c.diagnostics.map((d) => d.message).join('; ')}`);
  return c as Ok;
}

interface Row {
  target: string; config: string; proposer: string; lookahead: string; tokens: number; tokens_per_s: number; speedup: number;
  target_passes_per_token: number; acceptance_rate: number | null; tokens_per_pass: number; predicted_tokens_per_pass: number | null;
  draft_ms_per_pass: number | null; verify_ms_per_pass: number;
}

const f = (x: number | null, d = 2) => (x === null ? '-' : x.toFixed(d));

function table(rows: Row[]): string {
  const head = '| target | config | K | tok/s | vs plain | target passes/tok | acceptance | tokens/pass | predicted | draft ms/pass | verify ms/pass |';
  const sep = '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  return [head, sep, ...rows.map((r) => `| ${r.target} | ${r.config} | ${r.lookahead} | ${f(r.tokens_per_s, 1)} | ${f(r.speedup)}x | ${f(r.target_passes_per_token, 3)} | ${f(r.acceptance_rate)} | ${f(r.tokens_per_pass)} | ${f(r.predicted_tokens_per_pass)} | ${f(r.draft_ms_per_pass, 1)} | ${f(r.verify_ms_per_pass, 1)} |`)].join('\n');
}

async function main(): Promise<void> {
  const device = await createGpuDevice();
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const engine = async (c: Ok, weights: RandomWeights, shareWeightsWith?: WebGpuEngine): Promise<WebGpuEngine> => WebGpuEngine.create({ device, program: c.program, backend: wgslBackend, weights, shareWeightsWith });
  const shape = { vocab: 1024, dim: 256, layers: 8, heads: 8, kvHeads: 2, ffn: 512, seed: 7 };
  const targets = [
    { label: 'llama 8x256', text: llama('Target', shape) },
    // Small residual updates: later layers change little, the regime where a layer-skipping self-draft is accepted often.
    { label: 'llama 8x256, residual x0.3', text: llama('TargetDamped', { ...shape, scale: 0.3 }) },
  ];
  const draftText = llama('Draft', { vocab: 1024, dim: 64, layers: 1, heads: 2, kvHeads: 1, ffn: 128, seed: 99 });
  // A repetitive prompt: a phrase said three times.
  const phrase = [17, 301, 45, 999, 8, 612, 77, 5];
  const prompt = [...phrase, ...phrase, ...phrase];
  const rows: Row[] = [];
  const passCost: { target: string; tokens: number; ms: number }[] = [];

  for (const t of targets) {
    const target = compile(t.text, t.label);
    const weights = new RandomWeights(target.graph.params, 7);
    const tEngine = await engine(target, weights);
    const self2 = compile(t.text, t.label, 2), self6 = compile(t.text, t.label, 6);
    const draft = compile(draftText, 'draft');
    // Self-drafts bind the target's weight buffers, as `infer run --self-draft-layers` does.
    const drafts = { self2: await engine(self2, weights, tEngine), self6: await engine(self6, weights, tEngine), draft: await engine(draft, new RandomWeights(draft.graph.params, 99)) };
    log(`${t.label}: warm-up (kernel compilation)`);
    await generate(tEngine, prompt, { maxTokens: 10, ignoreEos: true });
    for (const e of Object.values(drafts)) await generate(e, prompt, { maxTokens: 3, ignoreEos: true });
    // Cost of one target pass scoring T tokens after the prompt (GEMV below 8 tokens, tiled matmul from 8).
    for (const T of [1, 2, 3, 5, 8, 9]) {
      tEngine.reset();
      await tEngine.forward(Int32Array.from(prompt), Int32Array.from(prompt.keys()), { rows: 'last' });
      const times: number[] = [];
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        await tEngine.forward(Int32Array.from({ length: T }, (_, i) => (i * 7) % 1024), Int32Array.from({ length: T }, (_, i) => prompt.length + i), { rows: 'all' });
        times.push(performance.now() - t0);
      }
      const ms = times.sort((a, b) => a - b)[2]; // the median of 5
      passCost.push({ target: t.label, tokens: T, ms });
    }

    log(`${t.label}: plain decode, ${TOKENS} tokens`);
    let plain = await generate(tEngine, prompt, { maxTokens: TOKENS + 1, ignoreEos: true });
    for (let r = 1; r < REPS; r++) {
      const again = await generate(tEngine, prompt, { maxTokens: TOKENS + 1, ignoreEos: true });
      if (again.stats.tokens_per_s > plain.stats.tokens_per_s) plain = again;
    }
    const plainTps = plain.stats.tokens_per_s;
    rows.push({ target: t.label, config: 'plain decode', proposer: '-', lookahead: '-', tokens: TOKENS, tokens_per_s: plainTps, speedup: 1, target_passes_per_token: 1,
      acceptance_rate: null, tokens_per_pass: 1, predicted_tokens_per_pass: null, draft_ms_per_pass: null, verify_ms_per_pass: plain.stats.decode_ms / TOKENS });

    const configs: [string, () => Proposer, number, boolean][] = [
      ['self-draft 2 of 8 layers', () => new DraftProposer(new PagedSeqModel(drafts.self2), 'self-draft', 'self-draft 2/8'), 4, false],
      ['self-draft 6 of 8 layers', () => new DraftProposer(new PagedSeqModel(drafts.self6), 'self-draft', 'self-draft 6/8'), 4, false],
      ['self-draft 2 of 8, adaptive', () => new DraftProposer(new PagedSeqModel(drafts.self2), 'self-draft', 'self-draft 2/8'), 8, true],
      ['unrelated random draft', () => new DraftProposer(new PagedSeqModel(drafts.draft), 'draft', 'random draft 1x64'), 4, false],
      ['unrelated draft, adaptive', () => new DraftProposer(new PagedSeqModel(drafts.draft), 'draft', 'random draft 1x64'), 8, true],
      ['prompt lookup n=2', () => new NgramProposer(2), 4, false],
      ['prompt lookup n=2, adaptive', () => new NgramProposer(2), 8, true],
    ];
    for (const [label, make, K, adaptive] of configs) {
      log(`${t.label}: ${label}`);
      const model = new PagedSeqModel(tEngine);
      // Adaptive runs start from the pass costs measured above (the controller keeps measuring as it goes).
      const calibration = passCost.filter((c) => c.target === t.label).map((c) => [c.tokens, c.ms] as const);
      let r = await speculativeGenerate(model, make(), [prompt], { maxTokens: TOKENS + 1, lookahead: K, adaptive, calibration, ignoreEos: true });
      for (let i = 1; i < REPS; i++) {
        const again = await speculativeGenerate(model, make(), [prompt], { maxTokens: TOKENS + 1, lookahead: K, adaptive, calibration, ignoreEos: true });
        if (again.stats.tokens_per_s > r.stats.tokens_per_s) r = again;
      }
      if (r.sequences[0].tokens.join() !== plain.tokens.join()) throw new Error(`${label}: speculative output differs from plain greedy decoding`);
      const s = r.stats.spec;
      rows.push({
        target: t.label, config: label, proposer: s.proposer, lookahead: adaptive ? `${f(s.lookahead, 1)} (<=${K})` : String(K), tokens: TOKENS,
        tokens_per_s: r.stats.tokens_per_s, speedup: r.stats.tokens_per_s / plainTps, target_passes_per_token: s.target_passes / TOKENS,
        acceptance_rate: s.acceptance_rate, tokens_per_pass: s.tokens_per_pass, predicted_tokens_per_pass: s.predicted_tokens_per_pass,
        draft_ms_per_pass: s.draft_ms / s.target_passes, verify_ms_per_pass: s.verify_ms / s.target_passes,
      });
    }
    tEngine.dispose();
    for (const e of Object.values(drafts)) e.dispose();
  }

  const adapter = info ? [info.vendor, info.architecture, info.description].filter(Boolean).join(' / ') : 'WebGPU';
  const costTable = ['| target | tokens scored | ms per pass | ms per token |', '|---|---:|---:|---:|',
    ...passCost.map((c) => `| ${c.target} | ${c.tokens} | ${c.ms.toFixed(1)} | ${(c.ms / c.tokens).toFixed(1)} |`)].join('\n');
  const md = `# Speculative decoding (bench/spec.ts)

Adapter: ${adapter}. Greedy, ${TOKENS} decode tokens after a ${prompt.length}-token repetitive prompt, best of ${REPS} runs; every speculative
run's tokens were checked equal to plain decoding. Target: llama, vocab 1024, dim 256, 8 layers, ffn 512, random weights;
self-drafts share its weights. "predicted" = mean over passes of (1 - a^(k+1)) / (1 - a) for the measured acceptance a
and each pass's k. tok/s on lavapipe (WebGPU on the CPU) is a ratio within this run, not an absolute figure.

${table(rows)}

Cost of one target pass by tokens scored (median of 5; the verify pass of K drafts scores K + 1):

${costTable}
`;
  writeResults('spec', { adapter, tokens: TOKENS, rows, pass_cost: passCost }, md);
  device.destroy();
}

runBench('spec', main);
