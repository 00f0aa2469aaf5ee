// `infer serve` under load: the server in-process on 127.0.0.1 (an ephemeral port) with
// examples/tiny-llama.infer on WebGPU (lavapipe here), and at each concurrency level C
// (1, 4, 16, 64) C `openai` clients that together send a fixed number of streamed,
// greedy completions of token-id prompts of mixed lengths (seeded). Measured on the
// client side: generated tokens/s over the level's wall time, time to first token and
// inter-token latency (p50/p90/p99). Writes bench/results/serve.{md,json} and
// bench/results/serve.svg (throughput and TTFT p50 against concurrency).
// llama-20m is the obvious model, but on lavapipe with 2 busy cores it decoded ~7 tok/s
// and did not scale with the batch: 64+ requests per level would take ~10 minutes.
// INFER_BENCH_SERVE_SPEC picks another spec (e.g. examples/llama-20m.infer),
// INFER_BENCH_SERVE_BACKEND=cpu the CPU engine (no adapter), INFER_BENCH_SERVE_REQUESTS
// the requests per level (default 256).
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import OpenAI from 'openai';
import { compileSpec } from '../compiler/compile.ts';
import { openEngines, type EngineBackendName } from '../cli/openEngine.ts';
import { startServer } from '../cli/serve/server.ts';
import { Scheduler } from '../runtime/serve/scheduler.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { runBench, writeResults } from './report.ts';
import { mulberry32 as rng } from './fixtures/rng.ts';

const LEVELS = [1, 4, 16, 64];
const MAX_TOKENS = 16;
const MAX_BATCH = 32;
const SEED = 1234;

interface Level {
  concurrency: number; requests: number; tokens: number; wallS: number; tokPerS: number;
  ttftMs: { p50: number; p90: number; p99: number }; itlMs: { p50: number; p90: number; p99: number };
}

/** Nearest-rank percentile of an unsorted sample. */
function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const pcts = (xs: number[]) => ({ p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99) });

/** Prompts of 4..96 tokens (ids 3..vocab-1, clear of bos/eos), seeded per level. */
function prompts(n: number, vocab: number, seed: number): number[][] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: 4 + Math.floor(r() * 93) }, () => 3 + Math.floor(r() * (vocab - 3))));
}

async function level(client: OpenAI, model: string, concurrency: number, ps: number[][]): Promise<Level> {
  const ttft: number[] = [], itl: number[] = [];
  let tokens = 0, next = 0;
  const one = async (prompt: number[]) => {
    const t0 = performance.now();
    const stream = await client.completions.create({ model, prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true });
    let last = -1;
    for await (const ch of stream) {
      const n = ch.choices.reduce((k, c) => k + ((c as unknown as { token_ids?: number[] }).token_ids?.length ?? 0), 0);
      if (n === 0) continue;
      const t = performance.now();
      if (last < 0) { ttft.push(t - t0); for (let i = 1; i < n; i++) itl.push(0); }
      // A chunk of several tokens: its gap shared among them.
      else for (let i = 0; i < n; i++) itl.push((t - last) / n);
      last = t;
      tokens += n;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < ps.length) await one(ps[next++]);
  }));
  const wallS = (performance.now() - t0) / 1000;
  return { concurrency, requests: ps.length, tokens, wallS, tokPerS: tokens / wallS, ttftMs: pcts(ttft), itlMs: pcts(itl) };
}

const f1 = (x: number) => x.toFixed(1);

/** Two panels: throughput (tok/s) and TTFT p50 (ms) against concurrency (log2 spaced). */
function chart(rows: Level[], title: string): string {
  const W = 760, H = 320, pw = 300, ph = 200, top = 60;
  const panel = (x0: number, label: string, color: string, ys: number[]) => {
    const max = Math.max(...ys) * 1.15 || 1;
    const px = (i: number) => x0 + 20 + (i * (pw - 40)) / Math.max(1, rows.length - 1);
    const py = (v: number) => top + ph - (v / max) * ph;
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const v = max * f, y = py(v);
      return `<line x1="${x0}" y1="${y.toFixed(1)}" x2="${x0 + pw}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/><text x="${x0 - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${v >= 100 ? v.toFixed(0) : v.toFixed(1)}</text>`;
    }).join('');
    const xs = rows.map((r, i) => `<text x="${px(i).toFixed(1)}" y="${top + ph + 18}" text-anchor="middle">${r.concurrency}</text>`).join('');
    const line = `<polyline fill="none" stroke="${color}" stroke-width="2" points="${ys.map((v, i) => `${px(i).toFixed(1)},${py(v).toFixed(1)}`).join(' ')}"/>`;
    const dots = ys.map((v, i) => `<circle cx="${px(i).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3.5" fill="${color}"/><text x="${px(i).toFixed(1)}" y="${(py(v) - 8).toFixed(1)}" text-anchor="middle" fill="${color}">${v >= 100 ? v.toFixed(0) : v.toFixed(1)}</text>`).join('');
    return `<g>${ticks}<line x1="${x0}" y1="${top + ph}" x2="${x0 + pw}" y2="${top + ph}" stroke="#888"/><line x1="${x0}" y1="${top}" x2="${x0}" y2="${top + ph}" stroke="#888"/>${xs}${line}${dots}`
      + `<text x="${x0 + pw / 2}" y="${top - 12}" text-anchor="middle" font-weight="bold">${label}</text>`
      + `<text x="${x0 + pw / 2}" y="${top + ph + 36}" text-anchor="middle">concurrent clients</text></g>`;
  };
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${title}</text>
${panel(60, 'throughput (generated tok/s)', '#1f77b4', rows.map((r) => r.tokPerS))}
${panel(440, 'time to first token, p50 (ms)', '#d62728', rows.map((r) => r.ttftMs.p50))}
</svg>
`;
}

runBench('serve', async () => {
  const backend = (process.env.INFER_BENCH_SERVE_BACKEND ?? 'webgpu') as EngineBackendName;
  const requests = Number(process.env.INFER_BENCH_SERVE_REQUESTS ?? 256);
  const spec = process.env.INFER_BENCH_SERVE_SPEC ?? 'examples/tiny-llama.infer';
  const c = compileSpec(readFileSync(spec, 'utf8'), spec);
  if (!c.program || !c.graph) throw new Error(`${spec} does not compile`);
  const m = c.program.model;
  const weights = new RandomWeights(c.program.params, m.weights.binding === 'random' ? m.weights.seed : 0);
  const { engines: [engine], device, close } = await openEngines(backend, [{ program: c.program, graph: c.graph, weights }], { maxSequences: MAX_BATCH });
  const scheduler = new Scheduler(engine, { maxQueue: 256 });
  const srv = await startServer({ scheduler, modelId: m.name, tokenizer: null, host: '127.0.0.1', port: 0 });
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 600_000 });
  const rows: Level[] = [];
  try {
    const vocab = c.program.model.vocab;
    await level(client, m.name, 2, prompts(2, vocab, SEED - 1)); // warm-up: pipelines, first allocations
    for (const conc of LEVELS) {
      const r = await level(client, m.name, conc, prompts(requests, vocab, SEED + conc));
      console.error(`serve bench: concurrency ${conc}: ${f1(r.tokPerS)} tok/s, TTFT p50 ${f1(r.ttftMs.p50)} ms, ITL p50 ${f1(r.itlMs.p50)} ms (${f1(r.wallS)} s)`);
      rows.push(r);
    }
  } finally {
    await srv.close(1000);
    close();
  }
  const where = `${backend}${device ? ` (${device})` : ''}`;
  const md = [
    `# Serving benchmark: ${m.name} behind \`infer serve\``,
    '',
    `\`infer serve\` in-process on 127.0.0.1, ${where}, max batch ${MAX_BATCH}; ${os.cpus().length} cores (${os.arch()}). `
      + `At each level, that many \`openai\` clients share ${requests} streamed greedy completions (token-id prompts of 4..96 tokens, seeded; max_tokens ${MAX_TOKENS}). `
      + 'Throughput: generated tokens / the level\'s wall time. TTFT: request sent to first token received. ITL: gap between streamed tokens (a chunk of n tokens counts its gap / n each).',
    '',
    '| concurrency | requests | tokens | wall s | tok/s | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | ITL p50 ms | ITL p90 ms | ITL p99 ms |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.concurrency} | ${r.requests} | ${r.tokens} | ${f1(r.wallS)} | ${f1(r.tokPerS)} | ${f1(r.ttftMs.p50)} | ${f1(r.ttftMs.p90)} | ${f1(r.ttftMs.p99)} | ${f1(r.itlMs.p50)} | ${f1(r.itlMs.p90)} | ${f1(r.itlMs.p99)} |`),
    '',
    '![throughput and TTFT p50 against concurrency](serve.svg)',
  ].join('\n');
  writeResults('serve', { model: m.name, backend, device: device ?? null, maxBatch: MAX_BATCH, maxTokens: MAX_TOKENS, requests, seed: SEED, levels: rows }, md);
  writeFileSync('bench/results/serve.svg', chart(rows, `${m.name} behind infer serve (${backend}, max batch ${MAX_BATCH}, ${requests} requests/level, max_tokens ${MAX_TOKENS})`));
});
