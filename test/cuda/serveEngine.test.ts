// `infer run --backend cuda-emu`: the ProgramRunner over the generated CUDA runner in
// --serve mode (runtime/cuda/), on the CPU emulation, against the CPU
// engine (the float64 interpreter): greedy 32 tokens, a batch of 3 prompts (continuous
// batching over the paged pool) and seeded sampling, on a dense model (draft-pair's
// target), MoE (tiny-mixtral) and paged int8 KV (tiny-paged-int8); speculative decoding
// with a draft model and with a self-draft (which binds the target's weight buffers: one
// runner process for both). One runner holding every kernel of these programs is built
// once (runtime/cuda/build.ts, into a cache of this file's) and named by INFER_CUDA_RUNNER,
// which also checks that a runner built for a superset serves each program; the CLI's own
// build-and-cache path is serveProtocol.test.ts's.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { compileModel } from '../../compiler/compile.ts';
import { parseInfer } from '../../dsl/index.ts';
import type { Program } from '../../program/program.ts';
import { buildServeRunner } from '../../runtime/cuda/build.ts';
import { cli } from '../cli/runCli.ts';

interface Sequence { tokens: number[] }
interface Report { tokens?: number[]; sequences?: Sequence[]; stats: { backend: string; spec?: { proposed: number; target_passes: number } } }

const cache = mkdtempSync(join(tmpdir(), 'infer-cuda-serve-'));
const saved = process.env.INFER_CUDA_RUNNER;
const SPECS = ['examples/draft-pair.infer', 'examples/tiny-mixtral.infer', 'examples/tiny-paged-int8.infer'];

/** Every program the runs below open: each spec's model, draft-pair's draft and its 2-layer self-draft. */
function programs(): Program[] {
  return SPECS.flatMap((spec) => {
    const parsed = parseInfer(readFileSync(spec, 'utf8'), spec);
    if (!parsed.ast) throw new Error(`${spec} does not parse`);
    const models = [compileModel(parsed.ast), ...(parsed.others ?? []).map((m) => compileModel(m))];
    if (spec === SPECS[0]) models.push(compileModel(parsed.ast, { layers: 2 }));
    return models.map((c) => {
      if (!c.program) throw new Error(`${spec} does not compile`);
      return c.program;
    });
  });
}

beforeAll(async () => {
  process.env.INFER_CUDA_RUNNER = (await buildServeRunner(programs(), cudaBackend, 'emu', cache)).binary;
}, 600_000);
afterAll(() => {
  if (saved === undefined) delete process.env.INFER_CUDA_RUNNER; else process.env.INFER_CUDA_RUNNER = saved;
  rmSync(cache, { recursive: true, force: true });
});

async function run(backend: 'cpu' | 'cuda-emu', spec: string, args: readonly string[]): Promise<Report> {
  const r = await cli('run', spec, '--backend', backend, '--json', ...args);
  if (r.code !== 0) throw new Error(`infer run --backend ${backend} exited ${r.code}: ${r.err}`);
  const out = JSON.parse(r.out) as Report;
  expect(out.stats.backend).toBe(backend === 'cpu' ? 'cpu' : 'cuda');
  return out;
}

const tokensOf = (r: Report): number[][] => (r.sequences ? r.sequences.map((s) => s.tokens) : [r.tokens!]);

/** The same run on both engines: the same tokens, returned for further checks. */
async function same(spec: string, args: readonly string[]): Promise<[Report, Report]> {
  const [cuda, cpu] = [await run('cuda-emu', spec, args), await run('cpu', spec, args)];
  expect(tokensOf(cuda)).toEqual(tokensOf(cpu));
  return [cuda, cpu];
}

const GREEDY = ['--tokens', '1,2,3', '--max-tokens', '32', '--ignore-eos'];
/** Prompts of different lengths, so prefill chunks and decode rows interleave. */
const BATCH = ['--tokens', '1,2,3', '--tokens', '5,6,7,8,9,10,11', '--tokens', '4', '--max-tokens', '8', '--ignore-eos'];
const SAMPLED = ['--tokens', '7,8', '--max-tokens', '8', '--temperature', '0.9', '--top-k', '40', '--top-p', '0.95', '--seed', '3', '--ignore-eos'];

describe('--backend cuda-emu (CudaEngine over runner-emu --serve) equals the CPU engine', () => {
  for (const spec of SPECS) {
    it(`${spec}: greedy 32 tokens, a batch of 3 prompts, seeded sampling`, async () => {
      for (const args of [GREEDY, BATCH, SAMPLED]) await same(spec, ['--no-speculative', ...args]);
    }, 600_000);
  }

  it('examples/draft-pair.infer: speculative decoding with its draft model and with a self-draft, greedy and seeded', async () => {
    for (const args of [['--tokens', '1,2,3', '--max-tokens', '16', '--ignore-eos'], SAMPLED, ['--self-draft-layers', '2', ...BATCH]]) {
      const [cuda, cpu] = await same('examples/draft-pair.infer', args);
      // The proposer ran: drafts were proposed and verified in fewer target passes than tokens.
      expect(cuda.stats.spec?.proposed).toBeGreaterThan(0);
      expect(cuda.stats.spec).toEqual(expect.objectContaining({ proposed: cpu.stats.spec?.proposed, target_passes: cpu.stats.spec?.target_passes }));
    }
  }, 600_000);
});
