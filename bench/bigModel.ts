// Real model sizes on WebGPU (lavapipe here): a TinyLlama-1.1B-shaped random GGUF (vocab
// 32000, dim 2048, 22 layers, 32 / 4 heads, ffn 5632) per weight type, written from a seed
// into .tmp/bench-big/ (never committed; reused when present), loaded tensor by tensor onto
// the device (its embedding and output projection split under the 128 MiB binding limit),
// 16 greedy tokens decoded and compared with llama.cpp's (node-llama-cpp, CPU) on the same
// file. Reported: load time, peak RSS against the file size, device bytes against weights +
// KV, decode tokens/s and bytes read per token against the analytic minimum. Plus llama-20m's
// device bytes with and without activation planning, and the planned device memory of a
// Llama-3-8B-shaped spec (compiled only). Each model runs in a child process of its own, so
// peak RSS is that run's alone (lavapipe's device memory is host memory, so it is in RSS).
// Writes bench/results/bigmodel.{json,md}; progress on stderr.
//   node --import tsx bench/bigModel.ts    INFER_BENCH_BIG_TYPES=q4_0,q8_0,f16 (default q4_0,f16)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { cpus, freemem, loadavg } from 'node:os';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { importGguf } from '../cli/importSpec.ts';
import { compileSpec } from '../compiler/compile.ts';
import { decodeMinimumBytes, forwardCost, kvCacheBytes, activationBytes } from '../compiler/cost.ts';
import { bufferBytes, type Program } from '../program/program.ts';
import { generate } from '../runtime/engine.ts';
import { GgufFile, GgufWeights } from '../runtime/weights/gguf.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { llamaTensors, writeLlamaGguf, type GgufLlama, type WeightType } from '../runtime/weights/randomLlamaGguf.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { MemoryPhases, residentBytes, type MemoryMark } from './memPhases.ts';
import { runBench, writeResults } from './report.ts';

const log = (s: string) => process.stderr.write(s + '\n');
const MiB = 2 ** 20;
const mib = (n: number) => Math.round(n / MiB);
const DIR = '.tmp/bench-big';
const TOKENS = 16;
const PROMPT = [1, 400, 1234, 5000, 77, 31000, 9, 2024];
/** Tokens per forward: prompts run in chunks of this many (activation and logits buffers are sized by it). */
const CHUNK = 64;

export const TINYLLAMA: Omit<GgufLlama, 'type'> = { vocab: 32000, dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, tied: false, seed: 11, ctx: 2048 };
export const LLAMA3_8B = { vocab: 128256, dim: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, ctx: 8192 };

/** The sources that decide a random GGUF's bytes: an edit to any of them makes a new file. */
const WRITER_SOURCES = ['runtime/weights/random.ts', 'runtime/weights/randomLlamaGguf.ts', 'runtime/weights/ggufWriter.ts', 'runtime/weights/ggufQuant.ts', 'program/quant.ts'];

/**
 * The file for a weight type, written once per content key (the shape, the type and the
 * writer's sources) and reused: to a temporary name first, so a killed write is never reused.
 */
export function bigFile(type: WeightType, shape: Omit<GgufLlama, 'type'> = TINYLLAMA, name = 'tinyllama-1.1b'): string {
  mkdirSync(DIR, { recursive: true });
  const hash = createHash('sha256').update(JSON.stringify({ ...shape, type }));
  for (const f of WRITER_SOURCES) hash.update(readFileSync(f));
  const file = `${DIR}/${name}-${type}-seed${shape.seed}-${hash.digest('hex').slice(0, 12)}.gguf`;
  if (!existsSync(file)) {
    const t0 = performance.now();
    const count = llamaTensors({ ...shape, type }).length;
    let shown = 0;
    writeLlamaGguf(`${file}.part`, { ...shape, type }, {
      onTensor: (_, i) => {
        const pct = Math.floor((100 * (i + 1)) / count);
        if (pct >= shown + 10 || i + 1 === count) { shown = pct; log(`  writing ${file}: ${pct}% of tensors, ${mib(statSync(`${file}.part`).size)} MiB, ${((performance.now() - t0) / 1000).toFixed(0)} s`); }
      },
    });
    renameSync(`${file}.part`, file);
    log(`wrote ${file} (${mib(statSync(file).size)} MiB) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  return file;
}

export interface InferRun {
  file_mb: number; load_s: number; peak_rss_mb: number; rss_vs_file: number; device_mb: number; weights_mb: number; kv_mb: number;
  activations_mb: number; other_mb: number; device_over_weights_kv_mb: number; parts: number; dispatches: number;
  decode_tok_s: number; bytes_per_token_mb: number; minimum_bytes_per_token_mb: number; tokens: number[];
  /** Memory at each phase of the run (bench/memPhases.ts). */
  memory: MemoryMark[];
}

/** The child: load `file` onto WebGPU, decode, report (stdout: one JSON line). */
async function inferChild(file: string): Promise<void> {
  const t0 = performance.now();
  const mem = new MemoryPhases();
  mem.mark('start (node, tsx, modules)');
  const text = importGguf(file);
  const weightTypes = GgufFile.with(file, (g) => new Map(g.tensors.map((t) => [t.name.replace(/\.weight$/, ''), t.type.name])));
  const c = compileSpec(text, file, { weightTypes });
  if (!c.program) throw new Error(`${file}: ${c.diagnostics.map((d) => d.message).join('; ')}`);
  const p = c.program;
  mem.mark('spec imported and compiled');
  let shown = 0;
  const weights = GgufWeights.load(file, p.params, {
    onProgress: (q) => {
      const pct = Math.floor((100 * q.bytes) / q.totalBytes);
      if (pct >= shown + 25 || q.index === q.count) { shown = pct; log(`  loading: ${pct}% (${mib(q.bytes)} of ${mib(q.totalBytes)} MiB)`); mem.mark(`loading: ${pct}% of the file read`); }
    },
  });
  const device = await createGpuDevice();
  mem.mark('WebGPU device created');
  const engine = await WebGpuEngine.create({ device, program: p, backend: wgslBackend, weights, maxSequences: 1, maxTokensPerForward: CHUNK, deviceMemoryBytes: freemem() });
  mem.mark('engine created (weights uploaded, kernels compiled)');
  weights.release();
  const loadS = (performance.now() - t0) / 1000;
  // Prefill and the first token, then time the decode steps alone.
  const g = await generate(engine, PROMPT, { maxTokens: TOKENS, ignoreEos: true });
  mem.mark(`prefill and ${TOKENS} tokens decoded`);
  const stats = engine.stats();
  const decodeTokS = g.stats.tokens_per_s;
  const paramDevice = p.buffers.filter((b) => b.kind === 'param').reduce((n, b) => n + bufferBytes(b, { maxTokens: CHUNK, pages: 0, maxSeqs: 1 }), 0);
  const kv = kvCacheBytes(p, p.model.maxContext);
  const context = PROMPT.length + TOKENS;
  const out: InferRun = {
    file_mb: mib(statSync(file).size), load_s: Number(loadS.toFixed(1)), peak_rss_mb: mib(residentBytes().hwm),
    rss_vs_file: Number((residentBytes().hwm / statSync(file).size).toFixed(2)),
    device_mb: mib(stats.bytesAllocated), weights_mb: mib(paramDevice), kv_mb: mib(kv), activations_mb: mib(stats.activationBytes ?? 0),
    other_mb: mib(stats.bytesAllocated - paramDevice - kv - (stats.activationBytes ?? 0)),
    device_over_weights_kv_mb: mib(stats.bytesAllocated - paramDevice - kv),
    parts: p.buffers.filter((b) => b.part).length, dispatches: p.steps.length,
    decode_tok_s: Number(decodeTokS.toFixed(2)), bytes_per_token_mb: mib(forwardCost(p, 1, context).bytesRead), minimum_bytes_per_token_mb: mib(decodeMinimumBytes(p, context)),
    tokens: g.tokens, memory: mem.marks,
  };
  engine.dispose();
  device.destroy();
  console.log(JSON.stringify(out));
}

/** The child: llama.cpp's greedy tokens on `file` (stdout: one JSON line). */
async function llamaChild(file: string): Promise<void> {
  const { runLlamaCppGreedy } = await import('./fixtures/llamaGreedy.ts');
  console.log(JSON.stringify(await runLlamaCppGreedy(file, PROMPT, TOKENS)));
}

/** llama-20m's device bytes, as the engine allocates them, with and without activation planning. */
async function smallChild(): Promise<void> {
  const text = readFileSync('examples/llama-20m.infer', 'utf8');
  const device = await createGpuDevice();
  const out: Record<string, number> = {};
  for (const planMemory of [false, true]) {
    const c = compileSpec(text, 'llama-20m.infer', { planMemory });
    const engine = await WebGpuEngine.create({ device, program: c.program!, backend: wgslBackend, weights: new RandomWeights(c.program!.params, 1) });
    out[planMemory ? 'planned_mb' : 'unplanned_mb'] = mib(engine.stats().bytesAllocated);
    out[planMemory ? 'planned_activations_mb' : 'unplanned_activations_mb'] = mib(engine.stats().activationBytes ?? 0);
    out.tokens_per_forward = engine.maxTokensPerForward;
    engine.dispose();
  }
  device.destroy();
  console.log(JSON.stringify(out));
}

/**
 * A 2-layer Llama-3-8B-wide model (tied output, random f32 weights: the 2 GiB table is split
 * into 128 MiB parts) forward over one token on WebGPU against the CPU engine.
 */
async function llama3TwoLayerChild(): Promise<void> {
  const text = llamaSpecText({ ...LLAMA3_8B, layers: 2, ctx: 256 }, true).replace('weights gguf', 'weights random(seed = 3)');
  const c = compileSpec(text, 'llama3-2l.infer');
  if (!c.program || !c.graph) throw new Error(`the 2-layer spec does not compile: ${c.diagnostics.map((d) => d.message).join('; ')}`);
  const weights = new RandomWeights(c.program.params, 3);
  const device = await createGpuDevice();
  let t = performance.now();
  const gpu = await WebGpuEngine.create({ device, program: c.program, backend: wgslBackend, weights, maxSequences: 1, maxTokensPerForward: 8 });
  const setupS = (performance.now() - t) / 1000;
  const ids = Int32Array.of(128000), pos = Int32Array.of(0);
  t = performance.now();
  const a = await gpu.forward(ids, pos);
  const gpuS = (performance.now() - t) / 1000;
  const deviceMb = mib(gpu.stats().bytesAllocated);
  gpu.dispose();
  device.destroy();
  const { CpuEngine } = await import('../runtime/cpu/engine.ts');
  const cpu = new CpuEngine(c.graph, weights, c.program, { maxSequences: 1 });
  t = performance.now();
  const b = await cpu.forward(ids, pos);
  const cpuS = (performance.now() - t) / 1000;
  let worst = 0, scale = 0, argA = 0, argB = 0;
  for (let i = 0; i < b.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i]));
    if (a[i] > a[argA]) argA = i;
    if (b[i] > b[argB]) argB = i;
  }
  console.log(JSON.stringify({ split_buffers: c.program.buffers.filter((x) => x.part).length, device_mb: deviceMb, setup_s: Number(setupS.toFixed(1)), gpu_forward_s: Number(gpuS.toFixed(2)), cpu_forward_s: Number(cpuS.toFixed(1)), max_abs_diff: worst, max_abs_logit: scale, relative: worst / scale, same_argmax: argA === argB }));
}

const child = (args: string[]): unknown => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'bench/bigModel.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').at(-1)!);
};

/** The planned device memory of a Llama-3-8B-shaped spec per weight type (compiled only). */
function llama3Plan(types: WeightType[]): Record<string, unknown>[] {
  return types.map((type) => {
    const spec = llamaSpecText(LLAMA3_8B);
    const weightTypes = new Map<string, string>();
    for (let l = 0; l < LLAMA3_8B.layers; l++) for (const w of ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down']) weightTypes.set(`blk.${l}.${w}`, type);
    weightTypes.set('token_embd', type); weightTypes.set('output', type);
    const c = compileSpec(spec, 'llama3-8b.infer', { weightTypes: type === 'f32' ? undefined : weightTypes });
    if (!c.program) throw new Error(`the Llama-3-8B spec does not compile: ${c.diagnostics.map((d) => d.message).join('; ')}`);
    const p = c.program;
    const weights = p.buffers.filter((b) => b.kind === 'param').reduce((n, b) => n + bufferBytes(b, { maxTokens: 0, pages: 0, maxSeqs: 0 }), 0);
    const kv = kvCacheBytes(p, p.model.maxContext);
    const acts = activationBytes(p, CHUNK);
    const logits = CHUNK * p.model.vocab * 4;
    return {
      type, weights_mb: mib(weights), kv_mb_at_ctx: mib(kv), context: p.model.maxContext, activations_mb: mib(acts), logits_mb: mib(logits),
      total_mb: mib(weights + kv + acts + logits), split_buffers: p.buffers.filter((b) => b.part).length, dispatches: p.steps.length,
      largest_buffer_mb: Number((Math.max(...p.buffers.map((b) => bufferBytes(b, { maxTokens: CHUNK, pages: p.kv.pages, maxSeqs: 1 }))) / MiB).toFixed(1)),
    };
  });
}

/** The llama spec infer imports from a GGUF of this shape (written without weights: the header is all importGguf reads). */
export function llamaSpecText(s: typeof LLAMA3_8B, tied = false): string {
  mkdirSync(DIR, { recursive: true });
  const file = `${DIR}/llama3-8b-header.gguf`;
  writeLlamaGguf(file, { ...s, layers: 1, type: 'f32', tied, seed: 1, vocab: s.vocab, dim: 64, ffn: 64, heads: 1, kvHeads: 1, headDim: 64 });
  // Widen the 1-layer toy's imported spec to the real shape: the config block is all that differs.
  return importGguf(file)
    .replace(/\bvocab = \d+/, `vocab = ${s.vocab}`).replace(/\bdim = \d+/, `dim = ${s.dim}`).replace(/\blayers = \d+/, `layers = ${s.layers}`)
    .replace(/\bheads = \d+/, `heads = ${s.heads}`).replace(/\bkv_heads = \d+/, `kv_heads = ${s.kvHeads}`).replace(/\bffn = \d+/, `ffn = ${s.ffn}`)
    .replace(/\bhead_dim = \d+/, `head_dim = ${s.dim / s.heads}`).replace(/\bmax_context = \d+/, `max_context = ${s.ctx}`);
}

async function main(): Promise<void> {
  const [mode, arg] = process.argv.slice(2);
  if (mode === '--infer') return inferChild(arg);
  if (mode === '--llama') return llamaChild(arg);
  if (mode === '--small') return smallChild();
  if (mode === '--llama3-2l') return llama3TwoLayerChild();
  const types = (process.env.INFER_BENCH_BIG_TYPES ?? 'q4_0,f16,q8_0,q4_K').split(',') as WeightType[];
  const load0 = loadavg();
  const rows: Row[] = [];
  let small: unknown = 'not run yet', llama3: Record<string, unknown>[] = [], twoLayer: unknown = 'not run yet';
  // The results are written after every stage, so a run cut short still leaves what it measured.
  const write = () => writeMarkdown(rows, small, llama3, twoLayer, load0);
  for (const type of types) {
    const file = bigFile(type);
    log(`${file}: infer on WebGPU`);
    const r = child(['--infer', file]) as InferRun;
    const load = loadavg().map((x) => Number(x.toFixed(1)));
    log(`${file}: llama.cpp`);
    const ref = child(['--llama', file]) as number[];
    rows.push({ type, ...r, llamacpp_agrees: ref.join() === r.tokens.join(), llamacpp_tokens: ref, load_average: load });
    write();
  }
  log('llama-20m device bytes');
  small = child(['--small']);
  log('Llama-3-8B-shaped plan');
  llama3 = llama3Plan(['f32', 'q8_0', 'q4_0', 'q4_K']);
  write();
  log('Llama-3-8B-wide, 2 layers: one-token forward on WebGPU vs the CPU engine');
  twoLayer = child(['--llama3-2l']);
  write();
}

type Row = InferRun & { type: string; llamacpp_agrees: boolean; llamacpp_tokens: number[]; load_average: number[] };

function writeMarkdown(rows: Row[], small: unknown, llama3: Record<string, unknown>[], twoLayer: unknown, load0: number[]): void {
  const load1 = loadavg();
  const budget = (r: InferRun) => r.weights_mb + r.kv_mb + 64;
  const md = [
    '# Real model sizes (bench/bigModel.ts)', '',
    `TinyLlama-1.1B-shaped random GGUF (vocab 32000, dim 2048, 22 layers, 32/4 heads, ffn 5632, context 2048, f32 KV cache at full context), one sequence, ${CHUNK} tokens per forward, ${TOKENS} greedy tokens after an ${PROMPT.length}-token prompt, WebGPU on this machine's adapter (${cpus().length} cores; load average ${load0.map((x) => x.toFixed(1)).join(' / ')} at the start, ${load1.map((x) => x.toFixed(1)).join(' / ')} at the end: other jobs shared the machine, so tokens/s are low and noisy). Device bytes = the engine's allocations; "over" = device bytes - weights - KV (activations, logits, inputs). Peak RSS = VmHWM of the process that loads and runs the model (lavapipe's device memory is host memory, so it is in RSS).`, '',
    '| type | file MiB | load s | peak RSS MiB | RSS / file | device MiB | weights MiB | KV MiB | over MiB | device <= weights + KV + 64 MiB | split buffers | decode tok/s | MiB read / token | minimum MiB / token | = llama.cpp greedy | load average after |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.type} | ${r.file_mb} | ${r.load_s} | ${r.peak_rss_mb} | ${r.rss_vs_file} | ${r.device_mb} | ${r.weights_mb} | ${r.kv_mb} | ${r.device_over_weights_kv_mb} | ${r.device_mb <= budget(r) ? 'yes' : 'NO'} | ${r.parts} | ${r.decode_tok_s} | ${r.bytes_per_token_mb} | ${r.minimum_bytes_per_token_mb} | ${r.llamacpp_agrees ? 'yes' : `NO: ${r.tokens.join(',')} vs ${r.llamacpp_tokens.join(',')}`} | ${r.load_average.join(' / ')} |`),
    '', 'Greedy agreement: f16 and q4_0 must give llama.cpp\'s 16 tokens. For q8_0 and the K-quants llama.cpp\'s CPU path quantises the activations to q8_0 / q8_K blocks for its integer dot products while infer keeps them f32 (test/agreement/cases.ts: relative logit differences of 1e-2 to 1.5e-2), so on a random 22-layer model, whose top logits are close, a greedy path may part after a few tokens.',
    '', '## Memory by phase', '',
    'RSS at each phase of each run (bench/memPhases.ts). What is above the device bytes is the process itself: node and the compiler\'s modules (the "start" row), Dawn, Vulkan and lavapipe with its LLVM ("device created" minus the row before), lavapipe\'s compiled shaders ("engine created" minus "100% read", less the device bytes not yet touched), and JS garbage, mostly from Dawn\'s node binding polling with setImmediate while a submission is pending (the V8 heap column swings by tens of MiB between collections during decode).',
    ...rows.flatMap((r) => ['', `${r.type} (file ${r.file_mb} MiB):`, '', ...new MemoryPhases(r.memory).table()]),
    '', `llama-20m device bytes (engine allocation, default tokens per forward ${(small as Record<string, number>).tokens_per_forward ?? '-'}): ${JSON.stringify(small)}`, '',
    'Llama-3-8B-shaped spec (vocab 128256, dim 4096, 32 layers, 32/8 heads, ffn 14336, context 8192), compiled only: planned device memory',
    '', '| type | weights MiB | KV MiB (one sequence at full context) | activations MiB | logits MiB | total MiB | split buffers | largest buffer MiB | dispatches |', '|---|---|---|---|---|---|---|---|---|',
    ...llama3.map((r) => `| ${r.type} | ${r.weights_mb} | ${r.kv_mb_at_ctx} | ${r.activations_mb} | ${r.logits_mb} | ${r.total_mb} | ${r.split_buffers} | ${r.largest_buffer_mb} | ${r.dispatches} |`),
  ].join('\n');
  writeResults('bigmodel', { rows, small, llama3, twoLayer, load_average: { start: load0, end: load1 } }, md + `\n\nLlama-3-8B-wide, 2 layers, tied output, random f32 weights, one token: WebGPU vs the CPU engine: ${JSON.stringify(twoLayer)}\n`);
}

if (process.argv[1]?.endsWith("bigModel.ts")) runBench("bigModel", main);
