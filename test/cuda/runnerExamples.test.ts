// Every example end to end through the generated CUDA runner on the CPU emulation: `infer
// compile --target cuda`, build.sh --emu, then the runner's tokens against the CPU engine's
// (`infer run --backend cpu`, the float64 interpreter): greedy 32 tokens of one prompt, a
// batch of three prompts (continuous batching over the paged pool), and a seeded sampled
// run. tiny-paged-int8 covers paged int8 KV, tiny-mixtral MoE, tiny-window the sliding
// window, the families' examples (tiny-qwen2 / qwen3 / gemma2 / phi3 / mistral; about 10 s each
// here) QKV biases, NEOX RoPE, per-head norms, soft-capping, GELU and slices. An example whose kernel kinds the CUDA backend does not render yet is listed as a
// todo naming the missing kinds, so it shows in every run until it is covered.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendEntry, missingKinds } from '../../backends/registry.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { cli } from '../cli/runCli.ts';
import { build, runJson } from './runnerHarness.ts';

const EXAMPLES = readdirSync('examples').filter((f) => f.endsWith('.infer')).sort().map((f) => join('examples', f));
/** Prompts of the batch case: different lengths, so prefill chunks and decode rows interleave. */
const BATCH = ['1,2,3', '5,6,7,8,9,10,11', '4'];
/** llama-20m (4096-token vocabulary, 6 layers of width 512) runs the greedy case only: the batch and sampling paths are the tiny models'. */
const GREEDY_ONLY = new Set(['examples/llama-20m.infer']);
/** The example also run under ASan and reverse replay (paged int8 KV: the most index arithmetic). */
const SANITIZED = 'examples/tiny-paged-int8.infer';

interface Sequence { tokens: number[]; stop_reason: string }

/** The CPU engine's run; plain decoding, as the runner does (a spec's speculative section would change sampled draws). */
async function cpuRun(spec: string, args: string[]): Promise<Record<string, unknown>> {
  const r = await cli('run', spec, '--backend', 'cpu', '--json', '--no-speculative', ...args);
  if (r.code !== 0) throw new Error(`infer run --backend cpu exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as Record<string, unknown>;
}

describe('examples through the generated CUDA runner (CPU emulation) equal the CPU engine', () => {
  const cuda = backendEntry('cuda');
  for (const spec of EXAMPLES) {
    const c = compileSpec(readFileSync(spec, 'utf8'), spec, {});
    if (!c.program) throw new Error(`${spec} does not compile: ${c.diagnostics.map((d) => d.message).join('; ')}`);
    const missing = missingKinds(cuda, c.program);
    if (missing.length) {
      it.todo(`${spec}: waits for CUDA kernels of kind ${missing.join(', ')}`);
      continue;
    }
    const greedyOnly = GREEDY_ONLY.has(spec);
    it(`${spec}: greedy 32 tokens${greedyOnly ? '' : ', a batch of 3 prompts, seeded sampling'}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'infer-cuda-example-'));
      try {
        const compiled = await cli('compile', spec, '--target', 'cuda', '--out', dir);
        expect(compiled.code, compiled.err).toBe(0);
        build(dir, '--emu');
        const single = ['--tokens', '1,2,3', '--max-tokens', '32', '--ignore-eos'];
        expect(runJson(dir, single).tokens).toEqual((await cpuRun(spec, single)).tokens);
        if (greedyOnly) return;
        const batch = [...BATCH.flatMap((p) => ['--tokens', p]), '--max-tokens', '8', '--ignore-eos'];
        const tokens = (o: Record<string, unknown>) => (o.sequences as Sequence[]).map((s) => s.tokens);
        expect(tokens(runJson(dir, batch))).toEqual(tokens(await cpuRun(spec, batch)));
        const sampled = ['--tokens', '7,8', '--max-tokens', '8', '--temperature', '0.9', '--top-k', '40', '--top-p', '0.95', '--seed', '3', '--ignore-eos'];
        expect(runJson(dir, sampled).tokens).toEqual((await cpuRun(spec, sampled)).tokens);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, 900_000);
    if (spec === SANITIZED) {
      it(`${spec}: the ASan build and reverse block / thread replay give the same tokens (no out-of-bounds access, no order dependence)`, async () => {
        const dir = mkdtempSync(join(tmpdir(), 'infer-cuda-asan-'));
        try {
          expect((await cli('compile', spec, '--target', 'cuda', '--out', dir)).code).toBe(0);
          build(dir, '--emu');
          build(dir, '--asan');
          const args = ['--tokens', '1,2,3', '--tokens', '4,5', '--max-tokens', '6', '--ignore-eos'];
          const want = runJson(dir, args).sequences;
          expect(runJson(dir, args, { asan: true }).sequences).toEqual(want);
          expect(runJson(dir, args, { reverseBlocks: true, reverseThreads: true }).sequences).toEqual(want);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }, 900_000);
    }
  }
});
