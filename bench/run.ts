// `npm run bench`: decode speed of the 21M-parameter example, measured side by
// side in one run: fused vs unfused on WebGPU, WebGPU vs the CPU engine, and
// achieved bandwidth against the adapter's streaming-read ceiling; plus
// dispatches and bytes read per token against the analytic minimum.
// Writes bench/results/latest.{json,md}; progress goes to stderr.
import { compileSpec } from '../compiler/compile.ts';
import { decodeMinimumBytes, forwardCost } from '../compiler/cost.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { CpuEngine } from '../runtime/cpu/engine.ts';
import { generate, type Engine } from '../runtime/engine.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { measureStreaming } from './streaming.ts';
import { fusedAndUnfused, runBench, writeResults } from './report.ts';

const SPEC = process.env.INFER_BENCH_SPEC ?? 'examples/llama-20m.infer';
const PROMPT = Array.from({ length: 16 }, (_, i) => (i * 37 + 11) % 4096);
const GPU_TOKENS = Number(process.env.INFER_BENCH_TOKENS ?? 48);
const CPU_TOKENS = Math.max(4, Math.round(GPU_TOKENS / 6));

const log = (s: string) => process.stderr.write(s + '\n');

interface Row {
  config: string; backend: string; decode_tokens: number; tokens_per_s: number; ms_per_token: number;
  dispatches_per_token: number; bytes_per_token: number; min_bytes_per_token: number; bytes_over_min: number;
  achieved_gb_s: number; of_streaming: number | null;
}

async function run(label: string, engine: Engine, tokens: number, program: NonNullable<ReturnType<typeof compileSpec>['program']>, streamingGbS: number | null): Promise<Row> {
  log(`  ${label}: warm-up`);
  await generate(engine, PROMPT.slice(0, 4), { maxTokens: 2, ignoreEos: true });
  log(`  ${label}: prefill ${PROMPT.length} tokens, decode ${tokens}`);
  const r = await generate(engine, PROMPT, { maxTokens: tokens + 1, ignoreEos: true, onToken: (_, i) => { if (i % 8 === 0) process.stderr.write('.'); } });
  process.stderr.write('\n');
  // Average the per-token cost over the decode contexts actually run.
  let bytes = 0, min = 0;
  for (let i = 0; i < tokens; i++) {
    const ctx = PROMPT.length + 1 + i;
    bytes += forwardCost(program, 1, ctx).bytesRead;
    min += decodeMinimumBytes(program, ctx);
  }
  bytes /= tokens; min /= tokens;
  const tps = r.stats.tokens_per_s;
  const achieved = (bytes * tps) / 1e9;
  return {
    config: label, backend: engine.backend, decode_tokens: tokens, tokens_per_s: tps, ms_per_token: 1000 / tps,
    dispatches_per_token: r.stats.dispatches_per_token, bytes_per_token: bytes, min_bytes_per_token: min, bytes_over_min: bytes / min,
    achieved_gb_s: achieved, of_streaming: streamingGbS ? achieved / streamingGbS : null,
  };
}

function table(rows: Row[]): string {
  const head = '| config | backend | tok/s | ms/tok | dispatches/tok | MB read/tok | min MB/tok | read/min | GB/s | of streaming |';
  const sep = '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|';
  const fmt = (r: Row) => `| ${r.config} | ${r.backend} | ${r.tokens_per_s.toFixed(1)} | ${r.ms_per_token.toFixed(1)} | ${r.dispatches_per_token} | ${(r.bytes_per_token / 1e6).toFixed(2)} | ${(r.min_bytes_per_token / 1e6).toFixed(2)} | ${r.bytes_over_min.toFixed(3)} | ${r.achieved_gb_s.toFixed(2)} | ${r.of_streaming === null ? '-' : (100 * r.of_streaming).toFixed(0) + '%'} |`;
  return [head, sep, ...rows.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  const { fused, unfused, model: m, seed } = fusedAndUnfused(SPEC);
  const params = fused.graph.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  log(`bench: ${m.name} (${(params / 1e6).toFixed(1)}M params), prompt ${PROMPT.length}, decode ${GPU_TOKENS} on WebGPU, ${CPU_TOKENS} on CPU`);
  const weights = new RandomWeights(fused.graph.params, seed);

  const device = await createGpuDevice();
  const adapterInfo = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  log('measuring the streaming-read ceiling (64 MiB)');
  const streaming = await measureStreaming(device);
  log(`  streaming read: ${streaming.gbPerS.toFixed(2)} GB/s`);

  const rows: Row[] = [];
  for (const [label, c] of [['fused', fused], ['unfused', unfused]] as const) {
    const engine = await WebGpuEngine.create({ device, program: c.program!, backend: wgslBackend, weights });
    rows.push(await run(label, engine, GPU_TOKENS, c.program!, streaming.gbPerS));
    engine.dispose();
  }
  const cpu = new CpuEngine(fused.graph, weights, fused.program);
  rows.push(await run('fused', cpu, CPU_TOKENS, fused.program, null));
  cpu.dispose();
  device.destroy();

  const ratio = rows[0].tokens_per_s / rows[1].tokens_per_s;
  const vsCpu = rows[0].tokens_per_s / rows[2].tokens_per_s;
  const md = [
    `# infer bench: ${m.name}, ${(params / 1e6).toFixed(1)}M params, f32`,
    '',
    `Adapter: ${adapterInfo?.description || adapterInfo?.vendor || 'unknown'}; streaming-read ceiling ${streaming.gbPerS.toFixed(2)} GB/s (64 MiB).`,
    `Prompt ${PROMPT.length} tokens; decode contexts ${PROMPT.length + 1}..${PROMPT.length + GPU_TOKENS}.`,
    '',
    table(rows),
    '',
    `fused / unfused decode speed on WebGPU: ${ratio.toFixed(2)}x; WebGPU / CPU engine: ${vsCpu.toFixed(2)}x.`,
    'MB read/tok comes from the Program (compiler/cost.ts); min = every weight once (one embedding row) + the live KV once.',
  ].join('\n');
  writeResults('latest', { spec: SPEC, params, streaming, rows, fused_over_unfused: ratio, webgpu_over_cpu: vsCpu }, md);
}

runBench('latest', main);
