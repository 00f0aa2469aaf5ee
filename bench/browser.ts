// The embeddable runtime in a browser against node (issue 16), the same generated module on
// both: `infer compile --target ts` of one model, run
//   - in headless Chromium (Debian's package) on WebGPU's SwiftShader adapter, through the web
//     example (examples/web: the page fetches the GGUF over loopback), and
//   - in node on Dawn + Mesa lavapipe (runtime/embed/node.ts).
// Reported: decode tokens/s (warm rounds, best of them; the first round pays the shader JIT)
// and the time from page load (navigation start) to the first generated token, against the
// time from asking node for a device to the first token. Both adapters are software
// rasterisers on this machine's CPU cores: a comparison of the two substrates and the
// runtime's overheads on each, not of GPUs.
// Run: node --import tsx bench/browser.ts  (writes bench/results/browser.{md,json}).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { nodeDevice, weightsFromPath } from '../runtime/embed/node.ts';
import { writeLlamaGguf } from '../runtime/weights/randomLlamaGguf.ts';
import { launchChromium, runPage, serveDir } from './fixtures/browserPage.ts';
import { runBench, writeResults } from './report.ts';

const DIR = join(process.cwd(), '.tmp', 'bench-browser');
const MODEL = { vocab: 2048, dim: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 344, type: 'f32', tied: false, seed: 3, ctx: 256, name: 'bench llama' } as const;
const PROMPT = [1, 300, 301, 302, 303, 304, 305, 306];
const TOKENS = Number(process.env.INFER_BENCH_TOKENS ?? 32);
const ROUNDS = 4;
const log = (s: string) => process.stderr.write(s + '\n');

interface ModelModule {
  createModel(device: GPUDevice, weights: ReturnType<typeof weightsFromPath>): Promise<{
    generate(p: number[], o: { maxTokens: number; ignoreEos: boolean }): AsyncGenerator<{ id: number }, { decodeMs: number; tokens: readonly number[] }>;
    dispose(): void;
  }>;
}

async function nodeRun(module: string, gguf: string) {
  const { createModel } = await import(module) as ModelModule;
  const t0 = performance.now();
  const device = await nodeDevice();
  const model = await createModel(device, weightsFromPath(gguf));
  const rates: number[] = [];
  let firstTokenMs = 0;
  let tokens: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const it = model.generate(PROMPT, { maxTokens: TOKENS, ignoreEos: true });
    const ids: number[] = [];
    for (let r = await it.next(); ; r = await it.next()) {
      if (r.done) { rates.push((r.value.tokens.length - 1) / (r.value.decodeMs / 1000)); break; }
      if (round === 0 && ids.length === 0) firstTokenMs = performance.now() - t0;
      ids.push(r.value.id);
    }
    if (round === 0) tokens = ids;
  }
  model.dispose();
  device.destroy();
  return { tokens, firstTokenMs, rates };
}

async function main(): Promise<void> {
  mkdirSync(DIR, { recursive: true });
  const gguf = join(DIR, 'bench-llama.gguf');
  writeLlamaGguf(gguf, { ...MODEL });
  const spec = join(DIR, 'bench-llama.infer');
  execFileSync(process.execPath, ['bin/infer.mjs', 'import', gguf, '-o', spec], { stdio: 'pipe' });
  const site = join(DIR, 'site');
  execFileSync(process.execPath, ['examples/web/build.mjs', spec, gguf, site], { stdio: 'pipe' });
  const module = join(site, 'gen', 'bench_llama.ts');

  log(`node (Dawn, lavapipe): ${ROUNDS} rounds of ${TOKENS} tokens`);
  const node = await nodeRun(module, gguf);
  log(`chromium (SwiftShader): ${ROUNDS} rounds of ${TOKENS} tokens`);
  const server = await serveDir(site);
  const browser = await launchChromium();
  let page;
  try {
    page = await runPage(browser, `${server.url}index.html?autorun=1&ignore-eos=1&max=${TOKENS}&rounds=${ROUNDS}&tokens=${PROMPT.join(',')}`, 600_000);
  } finally { await browser.close(); await server.close(); }
  if (page.tokens.join() !== node.tokens.join()) throw new Error(`the browser decoded other tokens than node: ${page.tokens.join(',')} vs ${node.tokens.join(',')}`);

  const warm = (rates: number[]) => Math.max(...rates.slice(1));
  const rows = [
    { where: 'node, Dawn on lavapipe', tokens_per_s: warm(node.rates), cold_tokens_per_s: node.rates[0], first_token_ms: node.firstTokenMs, from: 'nodeDevice() call' },
    { where: 'Chromium 156, SwiftShader', tokens_per_s: warm(page.rounds.map((r) => r.decodeTokensPerS)), cold_tokens_per_s: page.rounds[0].decodeTokensPerS, first_token_ms: page.firstTokenMs, from: 'navigation start' },
  ];
  const params = MODEL.vocab * MODEL.dim * 2 + MODEL.layers * (MODEL.dim * MODEL.dim * 3 + 3 * MODEL.dim * MODEL.ffn);
  const md = [
    '# Browser vs node: the generated module on two software WebGPU adapters',
    '',
    `One random llama GGUF (f32, ${MODEL.layers} layers, dim ${MODEL.dim}, vocab ${MODEL.vocab}, about ${(params / 1e6).toFixed(1)}M parameters), compiled once with`,
    `\`infer compile --target ts\`; prompt ${PROMPT.length} tokens, ${TOKENS} generated, ${ROUNDS} rounds in one load (the first is cold: shader JIT).`,
    'Both decode the same tokens (checked). tokens/s: decode only, best warm round. First token: from the start named, through',
    'device, weights (node: file read; browser: page, module and GGUF fetch over loopback), pipelines and prefill.',
    '',
    '| where | decode tokens/s (warm) | first round tokens/s | first token after (ms) | counted from |',
    '| --- | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.where} | ${r.tokens_per_s.toFixed(1)} | ${r.cold_tokens_per_s.toFixed(1)} | ${r.first_token_ms.toFixed(0)} | ${r.from} |`),
    '',
    `In the page (ms after navigation start): device ready ${page.marks.deviceMs?.toFixed(0)}, weights fetched ${page.marks.weightsMs?.toFixed(0)},`,
    `model ready ${page.loadMs.toFixed(0)} (weight upload and pipeline compilation), first token ${page.firstTokenMs.toFixed(0)}.`,
    '',
    `Browser/node decode speed: ${(rows[1].tokens_per_s / rows[0].tokens_per_s).toFixed(2)}x. Measured on ${new Date().toISOString().slice(0, 10)} on a machine shared with other work; read ratios, not absolutes.`,
  ].join('\n');
  writeResults('browser', { model: MODEL, prompt: PROMPT.length, tokens: TOKENS, rounds: ROUNDS, node, browser: { rounds: page.rounds, firstTokenMs: page.firstTokenMs, loadMs: page.loadMs, marks: page.marks, adapter: page.adapter }, rows }, md);
}

runBench('browser', main);
