// One stress process for scripts/stress-opt.mjs (run it through that script; see its
// header). Drives Dawn through the project's own code: per cycle it creates a device
// (runtime/webgpu/device.ts), builds WebGpuEngines for examples/tiny-llama.infer and
// examples/llama-20m.infer, runs a seeded random mix of forwards on them (1-token decode
// steps, prefills of 1..64 tokens, rollbacks, batches of 2-4 sequences), collects garbage
// every STRESS gcEvery forwards (needs --expose-gc), disposes the engines and destroys the
// device. Some cycles keep both engines alive on one device and interleave them.
//
// Configuration: the JSON in env STRESS_CFG (fields of Cfg below). Prints one line
// `STRESS-RESULT {json}` to stdout at the end (counts, phase timings, logit checksums);
// the parent compares checksums across processes and flag sets.
import { readFileSync } from 'node:fs';
import { compileSpec } from '../compiler/compile.ts';
import type { Program } from '../program/program.ts';
import type { Graph } from '../compiler/ir/index.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { RandomWeights } from '../runtime/weights/random.ts';
import { createGpuDevice, uncapturedErrors } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';

interface Cfg {
  /** Device lifetimes (create device ... destroy device). */
  cycles: number;
  /** Forwards per tiny-llama engine / per llama-20m engine. */
  tinyForwards: number;
  bigForwards: number;
  /** Engines of each spec built (and disposed) per device. */
  enginesPerDevice: number;
  /** global.gc() every this many forwards (0: never). */
  gcEvery: number;
  seed: number;
  /** Stop starting new work after this many seconds (0: no limit). */
  deadlineS: number;
  /** Skip llama-20m (quick runs). */
  noBig?: boolean;
}

const cfg: Cfg = { cycles: 3, tinyForwards: 400, bigForwards: 60, enginesPerDevice: 2, gcEvery: 50, seed: 1, deadlineS: 0, ...JSON.parse(process.env.STRESS_CFG ?? '{}') };
const t00 = performance.now();
const pastDeadline = () => cfg.deadlineS > 0 && (performance.now() - t00) / 1000 > cfg.deadlineS;
const gc = (globalThis as { gc?: () => void }).gc;
const log = (s: string) => process.stderr.write(`[w${cfg.seed} ${((performance.now() - t00) / 1000).toFixed(1)}s] ${s}\n`);

let rng = (cfg.seed * 2654435761) >>> 0 || 1;
const rand = () => { rng ^= rng << 13; rng >>>= 0; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0; return rng / 4294967296; };
const randInt = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

const counts = { forwards: 0, decodeSteps: 0, prefills: 0, batches: 0, rollbacks: 0, tokens: 0, gcs: 0, devices: 0, engines: 0, deviceErrors: 0 };
const timeMs = { compile: 0, weights: 0, engineSetup: 0, forwardsTiny: 0, forwardsBig: 0 };
/** Checksum of the last logits row of a fixed 8-token prefill, per spec (must agree everywhere). */
const checksums: Record<string, string[]> = {};

function maybeGc() {
  if (cfg.gcEvery > 0 && counts.forwards % cfg.gcEvery === 0 && gc) { gc(); counts.gcs++; }
}

function checkFinite(a: Float32Array, what: string) {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) throw new Error(`${what}: non-finite logit ${a[i]} at ${i}`);
}

interface Spec { name: string; graph: Graph; program: Program; seed: number }
function compile(file: string): Spec {
  const t = performance.now();
  const c = compileSpec(readFileSync(file, 'utf8'), file);
  if (!c.program || !c.graph) throw new Error(`${file} does not compile: ${c.diagnostics.map((d) => d.message).join('; ')}`);
  timeMs.compile += performance.now() - t;
  const m = c.program.model;
  return { name: m.name, graph: c.graph, program: c.program, seed: m.weights.binding === 'random' ? m.weights.seed : 0 };
}

async function build(device: GPUDevice, s: Spec): Promise<WebGpuEngine> {
  let t = performance.now();
  const weights = new RandomWeights(s.graph.params, s.seed);
  timeMs.weights += performance.now() - t;
  t = performance.now();
  // Weights are generated lazily by the engine's upload, so this covers generation too.
  const e = await WebGpuEngine.create({ device, program: s.program, backend: wgslBackend, weights, maxSequences: 4 });
  timeMs.engineSetup += performance.now() - t;
  counts.engines++;
  return e;
}

/** The fixed-prompt checksum, then `n` random forwards. */
async function* workload(e: WebGpuEngine, name: string, n: number): AsyncGenerator<void> {
  const V = e.model.vocab, maxCtx = Math.min(e.kv.maxLength, 256), maxT = Math.min(64, e.maxTokensPerForward);
  const tok = () => randInt(3, V - 1);
  const fwd = async (tokens: Int32Array, pos: Int32Array, rows: 'all' | 'last' = 'last') => {
    const r = await e.forward(tokens, pos, { rows });
    checkFinite(r, name);
    counts.forwards++; counts.tokens += tokens.length; maybeGc();
    return r;
  };
  e.reset();
  const prompt = Int32Array.from({ length: 8 }, (_, i) => (i * 37 + 11) % V);
  const ref = await fwd(prompt, Int32Array.from({ length: 8 }, (_, i) => i));
  let sum = 0;
  for (let i = 0; i < ref.length; i++) sum += ref[i] * ((i % 7) + 1);
  (checksums[name] ??= []).push(sum.toFixed(4));
  yield;
  let len = 8, done = 1;
  while (done < n) {
    const r = rand();
    if (r < 0.55) { // decode step
      if (len + 1 > maxCtx) { e.reset(); len = 0; }
      await fwd(Int32Array.of(tok()), Int32Array.of(len)); len++; counts.decodeSteps++; done++;
    } else if (r < 0.75) { // fresh prefill of 1..64 tokens
      e.reset();
      const P = randInt(1, maxT);
      await fwd(Int32Array.from({ length: P }, tok), Int32Array.from({ length: P }, (_, i) => i), rand() < 0.3 ? 'all' : 'last');
      len = P; counts.prefills++; done++;
    } else if (r < 0.85) { // rollback: continue from an earlier position
      if (len < 2) continue;
      const at = randInt(0, len - 1), P = randInt(1, Math.min(8, maxCtx - at));
      await fwd(Int32Array.from({ length: P }, tok), Int32Array.from({ length: P }, (_, i) => at + i));
      len = at + P; counts.rollbacks++; done++;
    } else { // a batch: 2-4 sequences, prefill together, then decode steps together
      e.reset(); len = 0;
      const k = randInt(2, Math.min(4, e.maxSequences));
      const seqs = Array.from({ length: k }, () => e.kv.join());
      let rows = await e.forwardBatch(seqs.map((seq) => ({ seq, tokens: Array.from({ length: randInt(1, 12) }, tok) })), { rows: 'last' });
      counts.forwards++; counts.batches++; done++; maybeGc();
      for (let s = 0; s < randInt(2, 8) && done < n; s++) {
        rows = await e.forwardBatch(seqs.map((seq) => ({ seq, tokens: [tok()] })), { rows: 'last' });
        rows.forEach((x) => checkFinite(x, name));
        counts.forwards++; counts.batches++; done++; maybeGc();
      }
      for (const q of seqs) e.kv.free(q);
      e.reset();
    }
    yield;
  }
}

async function drain(g: AsyncGenerator<void>, timer: 'forwardsTiny' | 'forwardsBig') {
  const t = performance.now();
  for await (const _ of g) if (pastDeadline()) break;
  timeMs[timer] += performance.now() - t;
}

async function main() {
  const tiny = compile('examples/tiny-llama.infer');
  const big = cfg.noBig ? null : compile('examples/llama-20m.infer');
  for (let c = 0; c < cfg.cycles && !pastDeadline(); c++) {
    const device = await createGpuDevice();
    counts.devices++;
    log(`cycle ${c}: device ${counts.devices}`);
    for (let i = 0; i < cfg.enginesPerDevice && !pastDeadline(); i++) {
      if ((c + i) % 2 === 1 && big) {
        // Both engines alive on one device, forwards interleaved.
        const [a, b] = [await build(device, tiny), await build(device, big)];
        const ga = workload(a, tiny.name, cfg.tinyForwards), gb = workload(b, big.name, cfg.bigForwards);
        const t = performance.now();
        let da = false, db = false;
        while (!(da && db) && !pastDeadline()) {
          if (!da) da = !!(await ga.next()).done;
          if (!db) db = !!(await gb.next()).done;
        }
        timeMs.forwardsBig += performance.now() - t;
        a.dispose(); b.dispose();
      } else {
        const a = await build(device, tiny);
        await drain(workload(a, tiny.name, cfg.tinyForwards), 'forwardsTiny');
        a.dispose();
        if (big && !pastDeadline()) {
          const b = await build(device, big);
          await drain(workload(b, big.name, cfg.bigForwards), 'forwardsBig');
          b.dispose();
        }
      }
      gc?.(); if (gc) counts.gcs++;
    }
    const errs = uncapturedErrors(device);
    counts.deviceErrors += errs.length;
    if (errs.length) log(`device errors: ${errs.join('; ')}`);
    device.destroy();
    gc?.(); if (gc) counts.gcs++;
  }
  const result = { cfg, counts, timeMs: Object.fromEntries(Object.entries(timeMs).map(([k, v]) => [k, Math.round(v)])), totalMs: Math.round(performance.now() - t00), checksums };
  console.log(`STRESS-RESULT ${JSON.stringify(result)}`);
  if (counts.deviceErrors) process.exit(3);
}

main().then(() => process.exit(0), (e: unknown) => {
  console.error(`stress worker failed: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(2);
});
