// infer against llama.cpp on the model families `infer import` reads besides llama:
// random-weight GGUF files with each architecture's llama.cpp tensor names and metadata
// (qwen2: q/k/v biases and NEOX RoPE; qwen3: per-head q/k RMS norms and NEOX RoPE; gemma2:
// scaled embeddings, post-norms, gated GELU, soft-capping, windows on even layers; phi3:
// fused QKV and gate/up weights split by slicing),
// compared on the CPU engine and on WebGPU as the llama cases are (suite.ts). Then one
// deliberate mistake per addition (a bias dropped, the interleaved RoPE instead of NEOX,
// a q norm left out, soft-capping off, ...) must fail the same comparison: the suite can tell.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importGguf } from '../../cli/importSpec.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { writeLlamaGguf } from '../../runtime/weights/randomLlamaGguf.ts';
import { FAMILY_CASES, GEMMA_CASES } from './cases.ts';
import { compileImported, greedyAgreement, logprobDiff, runInfer, runLlamaCpp, type Run } from './harness.ts';
import { agreementSuite, promptFor } from './suite.ts';

/** Greedy tokens per case (the llama suite's 64 would double the time for little more). */
const TOKENS = 32;

agreementSuite('llama.cpp agreement, qwen2, qwen3, qwen3moe, qwen2moe and phi3 files', FAMILY_CASES, TOKENS);
agreementSuite('llama.cpp agreement, gemma2 files', GEMMA_CASES, TOKENS);

/** Spec edits that each undo one thing a family adds. */
const MISTAKES: { label: string; what: string; edit: (spec: string) => string }[] = [
  { label: 'qwen2 f32 GQA', what: 'the k bias dropped', edit: (s) => s.replace(' + attn_k_bias', '') },
  { label: 'qwen2 f32 GQA', what: 'interleaved RoPE instead of NEOX', edit: (s) => s.replaceAll(', neox = true', '') },
  { label: 'gemma2 f32 GQA, window 4', what: 'attention soft-capping off', edit: (s) => s.replace(', softcap = attn_softcap', '') },
  { label: 'gemma2 f32 GQA, window 4', what: 'final soft-capping off', edit: (s) => s.replace(/softcap\((.*), final_softcap\)$/m, '$1') },
  { label: 'gemma2 f32 GQA, window 4', what: 'the window on every layer', edit: (s) => s.replace(' * (1 - layer_index % 2)', '') },
  { label: 'gemma2 f32 GQA, window 4', what: 'GELU replaced by SiLU', edit: (s) => s.replace('gelu(h @ ffn_gate)', 'silu(h @ ffn_gate)') },
  { label: 'phi3 f32 GQA, fused qkv and gate/up', what: 'gate and up swapped', edit: (s) => s.replace('silu(slice(gu, 0, ffn)) * slice(gu, ffn, ffn)', 'silu(slice(gu, ffn, ffn)) * slice(gu, 0, ffn)') },
  { label: 'qwen3moe f32 8 experts top-2', what: 'routing weights not renormalised', edit: (s) => s.replace('k = top_k)', 'k = top_k, renorm = false)') },
  { label: 'qwen2moe f32 4 experts top-2 + shared', what: 'the shared expert missing', edit: (s) => s.replace(' + sigmoid(h @ ffn_gate_inp_shexp) * shared', '') },
  { label: 'qwen2moe f32 4 experts top-2 + shared', what: 'the shared expert ungated', edit: (s) => s.replace('sigmoid(h @ ffn_gate_inp_shexp) * shared', 'shared') },
  { label: 'qwen3 f32 GQA, head_dim 16', what: 'the q norm left out', edit: (s) => s.replace('rmsnorm(reshape(h @ attn_q, [T, heads, head_dim]), attn_q_norm, eps = norm_eps)', 'reshape(h @ attn_q, [T, heads, head_dim])') },
];

describe('a deliberate mistake in a family spec fails the agreement check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'infer-mistake-'));
  const mistakeRows: string[] = [];
  const refs = new Map<string, Promise<Run>>();
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    console.log(`deliberate mistakes against llama.cpp:\n${mistakeRows.join('\n')}`);
  });
  for (const m of MISTAKES) {
    it(`${m.label}: ${m.what}`, async () => {
      const c = [...FAMILY_CASES, ...GEMMA_CASES].find((x) => x.label === m.label)!;
      const file = join(dir, `${c.label.replace(/[^A-Za-z0-9]+/g, '_')}.gguf`);
      const prompt = promptFor(c);
      // One llama.cpp run per file, shared by its mistakes.
      const ref = await (refs.get(c.label) ?? refs.set(c.label, (async () => {
        writeLlamaGguf(file, c);
        return runLlamaCpp(file, c.vocab, prompt, TOKENS);
      })()).get(c.label)!);
      const spec = importGguf(file), wrong = m.edit(spec);
      expect(wrong).not.toBe(spec);
      const { graph, program } = compileImported(wrong);
      const engine = new CpuEngine(graph, GgufWeights.load(file, program.params), program);
      const got = await runInfer(engine, prompt, TOKENS, [...prompt, ...ref.greedy.slice(0, -1)]);
      // The check the suite makes (suite.ts check): the distributions leave the tolerance. The
      // greedy tokens may well survive a mistake (a final soft-cap is monotonic: argmax is kept).
      const diff = logprobDiff(ref.prefill, got.prefill, c.tol);
      expect(diff.ratio, 'the mistake stays within the tolerance').toBeGreaterThan(1);
      mistakeRows.push(`  ${m.label}: ${m.what}: max |dlogprob| ${diff.max.toExponential(2)} (${diff.ratio.toFixed(0)}x the tolerance), greedy ${greedyAgreement(ref, got.greedy, prompt.length, c.tol).same}/${TOKENS} the same`);
    }, 60_000);
  }
});
