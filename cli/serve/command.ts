// `infer serve SPEC`: open one engine, load the weights' tokenizer where they carry one,
// and serve the OpenAI completions API until SIGTERM (or Ctrl-C): then stop accepting,
// let running requests finish for a bounded time, and exit 0.
import type { Graph } from '../../compiler/ir/graph.ts';
import type { Program } from '../../program/program.ts';
import type { Tokenizer } from '../../runtime/tokenizer/index.ts';
import { Scheduler } from '../../runtime/serve/scheduler.ts';
import { parseInteger } from '../args.ts';
import type { Io } from '../main.ts';
import { ENGINE_BACKENDS, isEngineBackend, openEngines } from '../openEngine.ts';
import { loadWeights, RunError } from '../run.ts';
import { startServer } from './server.ts';

export interface ServeFlags {
  weights?: string; backend?: string; host?: string; port?: string; 'max-batch'?: string; 'kv-pages'?: string; queue?: string; 'api-key'?: string;
}

export const SERVE_OPTIONS = {
  weights: { type: 'string' }, backend: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' },
  'max-batch': { type: 'string' }, 'kv-pages': { type: 'string' }, queue: { type: 'string' }, 'api-key': { type: 'string' },
} as const;

export const SERVE_USAGE = `infer serve SPEC [--weights FILE] [--backend webgpu|cpu|cuda|cuda-emu] [--host 127.0.0.1] [--port 8080]
                   [--max-batch N] [--kv-pages N] [--queue N] [--api-key KEY]
  Serves the OpenAI API: POST /v1/completions (token-id prompts; text when the weights carry a tokenizer),
  POST /v1/chat/completions (when they also carry a chat template), GET /v1/models,
  GET /health, GET /metrics (Prometheus). --max-batch: sequences per step (default 8); --kv-pages: the KV pool
  (default: max-batch full contexts); --queue: requests that may wait (default 64; more get 429).
  --api-key (or INFER_API_KEY): /v1/ routes need Authorization: Bearer KEY. SIGTERM drains (up to 30 s) and exits 0.`;

const DRAIN_MS = 30_000;

/** The tokenizer the weights carry (GGUF metadata, or tokenizer.json beside safetensors), or null (random weights, no vocabulary). */
async function tokenizerFor(file: string | undefined, io: Io): Promise<Tokenizer | null> {
  if (!file) return null;
  const { loadTokenizer } = await import('../text.ts');
  try { return loadTokenizer(file).tokenizer; } catch (e) {
    io.err(`note: no tokenizer from ${file} (${(e as Error).message}): prompts must be token ids\n`);
    return null;
  }
}

export async function serveCommand(c: { program: Program; graph: Graph }, f: ServeFlags, io: Io, signals: NodeJS.EventEmitter = process): Promise<number> {
  const m = c.program.model;
  const backend = f.backend ?? 'webgpu';
  if (!isEngineBackend(backend)) throw new RunError(`unknown backend '${backend}': use ${ENGINE_BACKENDS.join(', ')}`);
  const port = parseInteger('port', f.port, 8080, 0, 65535);
  const maxBatch = parseInteger('max-batch', f['max-batch'], 8, 1, 1024);
  const maxQueue = parseInteger('queue', f.queue, 64, 0);
  const pool = { maxSequences: maxBatch, ...(f['kv-pages'] !== undefined ? { kvPages: parseInteger('kv-pages', f['kv-pages'], 0, 1) } : {}) };
  const apiKey = f['api-key'] ?? process.env.INFER_API_KEY;
  const weights = await loadWeights(c.program, f.weights, '--weights', io, false);
  const tokenizer = await tokenizerFor(f.weights, io);
  const { engines: [engine], close } = await openEngines(backend, [{ program: c.program, graph: c.graph, weights }], pool);
  try {
    const scheduler = new Scheduler(engine, { maxQueue });
    const srv = await startServer({ scheduler, modelId: m.name, tokenizer, host: f.host ?? '127.0.0.1', port, ...(apiKey ? { apiKey } : {}) });
    io.err(`infer: serving ${m.name} on ${srv.url} (backend ${backend}, max batch ${maxBatch}, ${engine.kv.pool.total} KV pages of ${engine.kv.pageSize} tokens, ${tokenizer ? `tokenizer from the weights${tokenizer.chatTemplate !== undefined ? ' with a chat template' : ', no chat template'}` : 'token-id prompts only'})\n`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        signals.off('SIGTERM', onTerm); signals.off('SIGINT', onInt);
        io.err(`infer: ${sig}: no new requests; finishing ${scheduler.load.running + scheduler.load.waiting} running\n`);
        void srv.close(DRAIN_MS).then((all) => { if (!all) io.err(`infer: requests still running after ${DRAIN_MS / 1000} s were cancelled\n`); resolve(); });
      };
      const onTerm = () => stop('SIGTERM'), onInt = () => stop('SIGINT');
      signals.on('SIGTERM', onTerm); signals.on('SIGINT', onInt);
    });
    return 0;
  } finally {
    close();
  }
}
