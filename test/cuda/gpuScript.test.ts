// The parts of the GPU machine's script (bench/gpu/run.py) that need no GPU: its token
// comparison (exact, a near tie resolved to the reference's runner-up, a wrong token, a
// missing sequence), that a model without expected tokens fails, and that the committed 1B
// expected tokens (bench/gpu/expected-1b.json) belong to the current llama-1b.infer and carry
// a runner-up for every step. Runs python3 (present wherever the tests run; no torch needed).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXPECTED_1B, specSha256, type Expected1B } from '../../bench/gpu/expected.ts';
import { hfLlamaConfig } from '../../bench/gpu/hfConfig.ts';
import { compileSpec } from '../../compiler/compile.ts';

/** Calls run.<fn>(*args) for each [fn, args] in one python3 process; returns the results (as JSON). */
function py(calls: readonly (readonly [string, readonly unknown[]])[], env: Record<string, string> = {}): unknown[] {
  const code = "import json, sys; sys.path.insert(0, 'bench/gpu'); import run; print(json.dumps([getattr(run, f)(*a) for f, a in json.loads(sys.argv[1])]))";
  const r = spawnSync('python3', ['-B', '-c', code, JSON.stringify(calls)], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as unknown[];
}

describe('bench/gpu/run.py', () => {
  const c = { name: 'g', args: [], tokens: [[5, 6, 7], [8, 9]], runner_up: [[[1, 2.0], [4, 0.001], [3, 1.0]], [[2, 0.5], [1, 0.002]]] };
  const got = [[[5, 6, 7], [8, 9]], [[5, 4, 99], [8, 9]], [[5, 6, 8], [8, 9]], [[1, 6, 7], [8, 9]], [[5, 6, 7]], [[5, 6, 7], [8]]];
  const [exact, nearTie, wrong, farRunnerUp, fewer, shorter, noRunnerUp, noCases] = py([
    ...got.map((g): [string, unknown[]] => ['compare_tokens', [c, g]]),
    ['compare_tokens', [{ ...c, runner_up: undefined }, [[5, 4, 7], [8, 9]]]],
    ['check_cases', ['llama-1b', []]],
  ]);
  it('compare_tokens: exact tokens pass; a near tie resolved to the runner-up passes with a note and ends the comparison', () => {
    expect(exact).toEqual([true, '']);
    expect(nearTie).toEqual([true, expect.stringMatching(/^sequence 0 step 1: near tie .* runner-up 4/)]);
  });
  it('compare_tokens: a wrong token, a far runner-up, no runner-ups, a wrong sequence count or length fail', () => {
    expect(wrong).toEqual([false, 'sequence 0 step 2: expected 7, got 8']);
    expect(farRunnerUp).toEqual([false, 'sequence 0 step 0: expected 5, got 1']);
    expect(noRunnerUp).toEqual([false, 'sequence 0 step 1: expected 6, got 4']);
    expect(fewer).toEqual([false, '1 sequences, expected 2']);
    expect(shorter).toEqual([false, 'sequence 1: 1 tokens, expected 2']);
  });
  it('a model without expected tokens fails', () => {
    expect(noCases).toEqual([{ case: 'expected tokens', ok: false, error: 'no expected tokens for this model' }]);
  });
  it('the PyTorch side reports why it is skipped where torch cannot be imported', () => {
    // A planted torch module that fails to import, so the guard is exercised whether or not torch is installed.
    const dir = mkdtempSync(join(tmpdir(), 'infer-fake-torch-'));
    writeFileSync(join(dir, 'torch.py'), 'raise ImportError("planted: no torch")\n');
    try {
      expect(py([['torch_side_by_side', ['llama-1b', [], 8, 2]]], { PYTHONPATH: dir })).toEqual([{ skipped: 'cannot import torch / transformers: planted: no torch' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

it('the committed 1B expected tokens are for the current spec: greedy 32 tokens with runner-ups, a batch of 3', () => {
  const e = JSON.parse(readFileSync(EXPECTED_1B, 'utf8')) as Expected1B;
  expect(e.spec_sha256).toBe(specSha256(e.spec));
  const greedy = e.cases.find((c) => c.name === 'greedy-32')!;
  expect(greedy.tokens).toHaveLength(1);
  expect(greedy.tokens[0]).toHaveLength(32);
  expect(greedy.runner_up![0]).toHaveLength(32);
  for (const [id, gap] of greedy.runner_up![0]) { expect(id).toBeGreaterThanOrEqual(0); expect(gap).toBeGreaterThanOrEqual(0); }
  const batch = e.cases.find((c) => c.name === 'batch-3')!;
  expect(batch.tokens.map((t) => t.length)).toEqual([8, 8, 8]);
  // The batch's first prompt is the greedy case's: the same first 8 tokens.
  expect(batch.tokens[0]).toEqual(greedy.tokens[0].slice(0, 8));
});

it('the HF config of llama-1b.infer has its sizes (the PyTorch side of run.py builds the same model)', () => {
  const spec = 'bench/gpu/llama-1b.infer';
  const config = hfLlamaConfig(compileSpec(readFileSync(spec, 'utf8'), spec).program!);
  expect(config).toMatchObject({
    vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32,
    num_key_value_heads: 4, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
  });
});
