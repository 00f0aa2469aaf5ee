// infer against llama.cpp on the model families `infer import` reads besides llama:
// random-weight GGUF files with each architecture's llama.cpp tensor names and metadata
// (qwen2: q/k/v biases and NEOX RoPE; qwen3: per-head q/k RMS norms and NEOX RoPE),
// compared on the CPU engine and on WebGPU as the llama cases are (suite.ts). Then one
// deliberate mistake per family (a bias dropped, the interleaved RoPE instead of NEOX,
// the q/k norms left out) must fail the same comparison: the suite can tell.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importGguf } from '../../cli/importSpec.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { writeLlamaGguf } from '../../runtime/weights/randomLlamaGguf.ts';
import { FAMILY_CASES } from './cases.ts';
import { compileImported, greedyAgreement, logprobDiff, runInfer, runLlamaCpp } from './harness.ts';
import { agreementSuite, GREEDY_TOKENS, promptFor } from './suite.ts';

agreementSuite('llama.cpp agreement, qwen2 and qwen3 files', FAMILY_CASES);

/** Spec edits that each undo one thing a family adds. */
const MISTAKES: { label: string; what: string; edit: (spec: string) => string }[] = [
  { label: 'qwen2 f32 GQA', what: 'the k bias dropped', edit: (s) => s.replace(' + attn_k_bias', '') },
  { label: 'qwen2 f32 GQA', what: 'interleaved RoPE instead of NEOX', edit: (s) => s.replaceAll(', neox = true', '') },
  { label: 'qwen3 f32 GQA, head_dim 16', what: 'the q norm left out', edit: (s) => s.replace('rmsnorm(reshape(h @ attn_q, [T, heads, head_dim]), attn_q_norm, eps = norm_eps)', 'reshape(h @ attn_q, [T, heads, head_dim])') },
];

describe('a deliberate mistake in a family spec fails the agreement check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'infer-mistake-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  for (const m of MISTAKES) {
    it(`${m.label}: ${m.what}`, async () => {
      const c = FAMILY_CASES.find((x) => x.label === m.label)!;
      const file = join(dir, `${c.label.replace(/[^A-Za-z0-9]+/g, '_')}.gguf`);
      writeLlamaGguf(file, c);
      const prompt = promptFor(c);
      const ref = await runLlamaCpp(file, c.vocab, prompt, GREEDY_TOKENS);
      const spec = importGguf(file), wrong = m.edit(spec);
      expect(wrong).not.toBe(spec);
      const { graph, program } = compileImported(wrong);
      const engine = new CpuEngine(graph, GgufWeights.load(file, program.params), program);
      const got = await runInfer(engine, prompt, GREEDY_TOKENS, [...prompt, ...ref.greedy.slice(0, -1)]);
      const diff = logprobDiff(ref.prefill, got.prefill, c.tol);
      expect(diff.ratio, 'the mistake stays within the tolerance').toBeGreaterThan(1);
      expect(greedyAgreement(ref, got.greedy, prompt.length, c.tol).same).toBeLessThan(GREEDY_TOKENS);
    }, 60_000);
  }
});
