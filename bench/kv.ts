// KV-cache benchmark (issue 3), side by side in one run:
//   1. memory waste of paged vs contiguous layouts on a workload of mixed lengths;
//   2. decode speed of examples/llama-20m.infer with contiguous vs paged KV and with
//      f32 / f16 / int8 / int4 KV (tokens/s, bytes read per token from the cost
//      model), one sequence and a batch of 4 mixed-length sequences;
//   3. attention time against context length (1k..32k) per KV format, with and
//      without the flash-decoding split.
// Run: node --import tsx bench/kv.ts  (writes bench/results/kv.{md,json}).
import { readFileSync } from 'node:fs';
import { compileSpec } from '../compiler/compile.ts';
import { forwardCost } from '../compiler/cost.ts';
import type { KvDType } from '../program/model.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { BatchGenerator } from '../runtime/batchGenerate.ts';
import { generate } from '../runtime/engine.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { attentionVsContext, type AttentionRow } from './kvAttention.ts';
import { mixedLengths, wasteTable } from './kvWaste.ts';
import { runBench, writeResults } from './report.ts';

const SPEC = 'examples/llama-20m.infer';
const DECODE = Number(process.env.INFER_BENCH_TOKENS ?? 24);
const PROMPT = 128;
const CONTEXTS = (process.env.INFER_BENCH_CONTEXTS ?? '1024,2048,4096,8192,16384,32768').split(',').map(Number);
const log = (s: string) => process.stderr.write(s + '\n');

interface DecodeRow { kv: string; batch: number; tokens_per_s: number; ms_per_step: number; kv_bytes_per_token: number; bytes_read_per_token: number }

const CONFIGS: { label: string; line: string }[] = [
  { label: 'contiguous f32', line: 'kv_cache { layout = contiguous; dtype = f32 }' },
  { label: 'paged(16) f32', line: 'kv_cache { layout = paged(page = 16); dtype = f32 }' },
  { label: 'paged(16) f16', line: 'kv_cache { layout = paged(page = 16); dtype = f16 }' },
  { label: 'paged(16) int8', line: 'kv_cache { layout = paged(page = 16); dtype = int8 }' },
  { label: 'paged(16) int4', line: 'kv_cache { layout = paged(page = 16); dtype = int4 }' },
];

async function main(): Promise<void> {
  const text = readFileSync(SPEC, 'utf8');
  const base = compileSpec(text, SPEC).program!;
  const m = base.model;

  log('1. KV memory waste, 64 sequences of mixed lengths (llama-20m: 6 layers, 2 KV heads x 64, f16)');
  const lengths = mixedLengths(64, m.maxContext);
  const waste = wasteTable({ kvHeads: m.kvHeads, headDim: m.headDim, dtype: 'f16' }, m.layers, m.maxContext, lengths, [8, 16, 32, 64]);

  const device = await createGpuDevice();
  const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 37 + 11) % m.vocab);
  const prompts = [24, 130, 7, 300].map((n, j) => Array.from({ length: n }, (_, i) => (i * 31 + j * 7 + 3) % m.vocab));
  const decode: DecodeRow[] = [];
  log(`2. decode, ${DECODE} tokens after a ${PROMPT}-token prompt, and a batch of 4 prompts (${prompts.map((p) => p.length).join(', ')} tokens)`);
  // Two rounds in alternating order; the better of the two is kept (this machine is noisy).
  const best = new Map<string, DecodeRow>();
  for (const round of [0, 1]) {
    for (const cfg of round ? [...CONFIGS].reverse() : CONFIGS) {
      const c = compileSpec(text.replace('kv_cache { layout = contiguous; dtype = f32 }', cfg.line), SPEC);
      if (!c.program || !c.graph) throw new Error(`${cfg.label} does not compile`);
      const weights = new RandomWeights(c.graph.params, 7);
      const engine = await WebGpuEngine.create({ device, program: c.program, backend: wgslBackend, weights, maxSequences: 4 });
      await generate(engine, prompt.slice(0, 4), { maxTokens: 2, ignoreEos: true });
      const r = await generate(engine, prompt, { maxTokens: DECODE + 1, ignoreEos: true });
      let bytes = 0;
      for (let i = 0; i < DECODE; i++) bytes += forwardCost(c.program, 1, prompt.length + 1 + i).bytesRead / DECODE;
      const kvTok = engine.kvStats().bytes_used / (prompt.length + DECODE);
      const one: DecodeRow = { kv: cfg.label, batch: 1, tokens_per_s: r.stats.tokens_per_s, ms_per_step: 1000 / r.stats.tokens_per_s, kv_bytes_per_token: kvTok, bytes_read_per_token: bytes };
      // The batch: one prefill step for all four prompts, then decode steps of 4 tokens each (timed).
      engine.reset();
      const g = new BatchGenerator(engine, { maxTokens: DECODE + 1, ignoreEos: true });
      for (const p of prompts) g.add(p);
      await g.step();
      const t0 = performance.now();
      let steps = 0;
      while (!g.done) { await g.step(); steps++; }
      const ms = (performance.now() - t0) / steps;
      const batched: DecodeRow = { kv: cfg.label, batch: 4, tokens_per_s: 4000 / ms, ms_per_step: ms, kv_bytes_per_token: kvTok, bytes_read_per_token: NaN };
      engine.dispose();
      for (const row of [one, batched]) {
        const key = `${row.kv}|${row.batch}`;
        if (!best.has(key) || best.get(key)!.tokens_per_s < row.tokens_per_s) best.set(key, row);
      }
      log(`  round ${round + 1} ${cfg.label}: ${one.tokens_per_s.toFixed(1)} tok/s alone, ${batched.tokens_per_s.toFixed(1)} tok/s in a batch of 4`);
    }
  }
  for (const cfg of CONFIGS) for (const batch of [1, 4]) decode.push(best.get(`${cfg.label}|${batch}`)!);

  log(`3. attention vs context (${CONTEXTS.join(', ')}), 8 query heads / 2 KV heads x 64, page 16`);
  const dtypes: KvDType[] = ['f32', 'f16', 'int8', 'int4'];
  const attention = await attentionVsContext(device, CONTEXTS, dtypes, log);
  device.destroy();

  const md = report(waste, decode, attention);
  writeResults('kv', { waste, decode, attention }, md);
}

const mb = (b: number) => (b / 1e6).toFixed(2);

function report(waste: ReturnType<typeof wasteTable>, decode: DecodeRow[], att: AttentionRow[]): string {
  const out: string[] = ['# KV-cache benchmark', ''];
  out.push('## Memory waste: 64 live sequences of mixed lengths (16..1000 tokens), llama-20m KV in f16', '');
  out.push('| layout | page | tokens | MB used | MB reserved | waste |', '|---|---:|---:|---:|---:|---:|');
  for (const w of waste) out.push(`| ${w.layout} | ${w.page_size} | ${w.tokens} | ${mb(w.bytes_used)} | ${mb(w.bytes_reserved)} | ${(100 * w.waste).toFixed(1)}% |`);
  out.push('', 'waste = (reserved - used) / used, from the runtime\'s own page accounting (runtime/kv/sequences.ts).', '');
  out.push(`## Decode, llama-20m on WebGPU: one sequence (${PROMPT}-token prompt, ${DECODE} tokens) and a batch of 4 mixed-length prompts (decode steps only)`, '');
  out.push('| KV | batch | tok/s | ms/step | KV bytes/token | MB read/token (model) |', '|---|---:|---:|---:|---:|---:|');
  for (const d of decode) out.push(`| ${d.kv} | ${d.batch} | ${d.tokens_per_s.toFixed(1)} | ${d.ms_per_step.toFixed(1)} | ${d.kv_bytes_per_token.toFixed(0)} | ${Number.isNaN(d.bytes_read_per_token) ? '-' : mb(d.bytes_read_per_token)} |`);
  const one = (kv: string) => decode.find((d) => d.kv === kv && d.batch === 1)!;
  const four = (kv: string) => decode.find((d) => d.kv === kv && d.batch === 4)!;
  out.push('', `paged(16) / contiguous decode speed: ${(one('paged(16) f32').tokens_per_s / one('contiguous f32').tokens_per_s).toFixed(2)}x; batch of 4 / one sequence (paged f32, tokens/s; the weights are read once per step for all 4): ${(four('paged(16) f32').tokens_per_s / one('paged(16) f32').tokens_per_s).toFixed(2)}x.`);
  out.push(`int8 / f16 and int4 / f16 decode speed: ${(one('paged(16) int8').tokens_per_s / one('paged(16) f16').tokens_per_s).toFixed(2)}x, ${(one('paged(16) int4').tokens_per_s / one('paged(16) f16').tokens_per_s).toFixed(2)}x (at this short context the weights dominate the bytes read).`, '');
  out.push('## Attention time vs context (one token, one layer, 8 query / 2 KV heads x 64, page 16)', '');
  out.push('| context | KV | kernel | splits | ms | MB read | GB/s |', '|---:|---|---|---:|---:|---:|---:|');
  for (const a of att) out.push(`| ${a.context} | ${a.dtype} | ${a.kernel} | ${a.splits} | ${a.ms.toFixed(2)} | ${mb(a.bytes_read)} | ${a.gb_s.toFixed(2)} |`);
  const fusedRows = att.filter((a) => a.kernel === 'fused');
  const at = (ctx: number, dt: string, split: boolean) => fusedRows.filter((a) => a.context === ctx && a.dtype === dt).sort((x, y) => (split ? y.splits - x.splits : x.splits - y.splits))[0];
  const unfused = att.filter((a) => a.kernel === 'unfused' && a.dtype === 'f16');
  if (unfused.length) {
    out.push('', `Unfused (--no-fuse attention: scores, softmax, P.V) / fused time, f16 KV: ${unfused.map((u) => `${u.context} tokens ${(u.ms / at(u.context, 'f16', false).ms).toFixed(2)}x`).join(', ')} (one workgroup per KV head, no split).`);
  }
  const top = Math.max(...att.map((a) => a.context));
  out.push('', `At ${top} tokens (best split): int8 / f16 time ${(at(top, 'int8', true).ms / at(top, 'f16', true).ms).toFixed(2)}x, int4 / f16 ${(at(top, 'int4', true).ms / at(top, 'f16', true).ms).toFixed(2)}x; bytes ${(at(top, 'int8', true).bytes_read / at(top, 'f16', true).bytes_read).toFixed(2)}x and ${(at(top, 'int4', true).bytes_read / at(top, 'f16', true).bytes_read).toFixed(2)}x.`);
  out.push(`Split-K at ${top} tokens (f32): ${at(top, 'f32', true).splits} splits ${(at(top, 'f32', false).ms / at(top, 'f32', true).ms).toFixed(2)}x faster than one workgroup per KV head.`);
  return out.join('\n');
}

runBench('kv', main);
