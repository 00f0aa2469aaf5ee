// Shared by the serve tests: examples/tiny-llama.infer on the CPU engine behind a real
// HTTP server on 127.0.0.1 (an ephemeral port), an `openai` client for it, and the
// single-run greedy output every served completion must equal.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { generate } from '../../runtime/engine.ts';
import { Scheduler } from '../../runtime/serve/scheduler.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { startServer, type RunningServer } from '../../cli/serve/server.ts';
import type { SamplingOptions } from '../../runtime/sampling.ts';

const file = new URL('../../examples/tiny-llama.infer', import.meta.url).pathname;
const c = compileSpec(readFileSync(file, 'utf8'), file);
if (!c.program || !c.graph) throw new Error('tiny-llama does not compile');
export const program = c.program, graph = c.graph;
const weights = new RandomWeights(program.params, (program.model.weights as { seed: number }).seed);
export const MODEL = program.model.name;
export const SPEC = file;

export interface Served {
  readonly srv: RunningServer;
  readonly scheduler: Scheduler;
  readonly engine: CpuEngine;
  readonly client: OpenAI;
}

export async function serve(o: { maxBatch?: number; kvPages?: number; queue?: number; apiKey?: string } = {}): Promise<Served> {
  const engine = new CpuEngine(graph, weights, program, { maxSequences: o.maxBatch ?? 8, ...(o.kvPages ? { kvPages: o.kvPages } : {}) });
  const scheduler = new Scheduler(engine, { maxQueue: o.queue ?? 64 });
  const srv = await startServer({ scheduler, modelId: MODEL, tokenizer: null, host: '127.0.0.1', port: 0, ...(o.apiKey ? { apiKey: o.apiKey } : {}) });
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: o.apiKey ?? 'none', maxRetries: 0, timeout: 30_000 });
  return { srv, scheduler, engine, client };
}

const alone = new CpuEngine(graph, weights, program, { maxSequences: 1 });
const memo = new Map<string, number[]>();

/** What the prompt generates on its own; the server stops at eos and leaves it out, as OpenAI does. */
export async function single(prompt: number[], maxTokens: number, sampling: SamplingOptions = { temperature: 0 }): Promise<number[]> {
  const key = JSON.stringify([prompt, maxTokens, sampling]);
  if (!memo.has(key)) {
    alone.reset();
    const r = await generate(alone, prompt, { maxTokens, sampling });
    const eos = program.model.eos;
    const i = eos === null ? -1 : r.tokens.indexOf(eos);
    memo.set(key, i < 0 ? r.tokens : r.tokens.slice(0, i));
  }
  return memo.get(key)!;
}

/** Waits (bounded) until the scheduler is idle and every KV page is back in the pool. */
export async function settled(s: Served): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { running, waiting } = s.scheduler.load;
    if (running + waiting === 0 && s.engine.kv.pool.used === 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not settled: ${JSON.stringify(s.scheduler.load)}, ${s.engine.kv.pool.used} KV pages used`);
}

export type WithIds = { token_ids: number[] };
