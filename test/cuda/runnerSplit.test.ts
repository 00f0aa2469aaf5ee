// Split Programs (compiler/splitParams.ts: params over the buffer limits held as column /
// vocabulary parts, each its own buffer and dispatch) through the generated CUDA runner on
// the CPU emulation, under artificially low limits: each part is filled with its slice of
// the tensor (a GGUF file's rows of q8_0 / q4_0 blocks; the seeded stream from the part's
// first value on), and the greedy tokens equal the CPU engine's on the unsplit model.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import type { Program } from '../../program/program.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { GgufFile } from '../../runtime/weights/gguf.ts';
import { writeLlamaGguf } from '../../runtime/weights/randomLlamaGguf.ts';
import { cli } from '../cli/runCli.ts';
import { SafetensorsWeights } from '../../runtime/weights/hfLlama.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { SafetensorsFile } from '../../runtime/weights/safetensors.ts';
import { build, runJson, runRunner, writeRunner } from './runnerHarness.ts';

const ARGS = ['--tokens', '1,2,3', '--tokens', '4', '--max-tokens', '8', '--ignore-eos'];
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

async function cpuSequences(spec: string, args: readonly string[]): Promise<number[][]> {
  const r = await cli('run', spec, '--backend', 'cpu', '--json', '--no-speculative', ...args);
  if (r.code !== 0) throw new Error(`infer run --backend cpu exited ${r.code}: ${r.err}`);
  return (JSON.parse(r.out) as { sequences: { tokens: number[] }[] }).sequences.map((s) => s.tokens);
}

/** Builds the program's runner-emu; returns its directory and its sequences for `args`. */
function runnerSequences(program: Program, args: readonly string[]): { dir: string; tokens: number[][] } {
  const dir = writeRunner(program, 'infer-runner-split-');
  dirs.push(dir);
  build(dir, '--emu');
  return { dir, tokens: (runJson(dir, args).sequences as { tokens: number[] }[]).map((s) => s.tokens) };
}

/** The parts per split param, e.g. { token_embd: 5 }. */
function partCounts(p: Program): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of p.buffers) if (b.part) out[b.part.of] = (out[b.part.of] ?? 0) + 1;
  return out;
}

describe('split Programs through the CUDA runner equal the CPU engine', () => {
  it('GGUF: a tied q8_0 embedding in vocabulary parts (embed and output), q4_0 FFN matrices in column parts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-runner-split-'));
    dirs.push(dir);
    const file = join(dir, 'm.gguf'), spec = join(dir, 'm.infer');
    writeLlamaGguf(file, { vocab: 300, dim: 64, layers: 1, heads: 2, kvHeads: 1, ffn: 96, type: 'q4_0', embdType: 'q8_0', tied: true, seed: 5, ctx: 64 });
    const text = importGguf(file);
    writeFileSync(spec, text);
    const weightTypes = GgufFile.with(file, (g) => new Map(g.tensors.map((t) => [t.name.replace(/\.weight$/, ''), t.type.name])));
    const limits = { maxBindingBytes: 3000, maxBufferBytes: 3000 };
    const program = compileSpec(text, 's.infer', { weightTypes, limits }).program!;
    expect(partCounts(program)).toEqual({ token_embd: 7, 'blk.0.ffn_gate': 2, 'blk.0.ffn_up': 2, 'blk.0.ffn_down': 2 });
    expect(program.buffers.find((b) => b.part?.of === 'token_embd')!.dtype).toBe('q8_0');
    expect(runnerSequences(program, ['--weights', file, ...ARGS]).tokens).toEqual(await cpuSequences(spec, ['--weights', file, ...ARGS]));
  }, 300_000);

  it('seeded weights: tiny-llama with every param over 16 KiB split; --write-hf writes them as the HF checkpoint hfLlama.ts reads back exactly', async () => {
    const spec = 'examples/tiny-llama.infer';
    const program = compileSpec(readFileSync(spec, 'utf8'), spec, { limits: { maxBindingBytes: 16384, maxBufferBytes: 16384 } }).program!;
    expect(Object.keys(partCounts(program)).length).toBeGreaterThan(2);
    const { dir, tokens } = runnerSequences(program, ARGS);
    expect(tokens).toEqual(await cpuSequences(spec, ARGS));
    // The PyTorch side of bench/gpu/run.py loads this file: HF names, [out, in] shapes, q/k rows in rotate-half order.
    const hf = join(dir, 'model.safetensors');
    expect(runRunner(dir, ['--write-hf', hf]).status).toBe(0);
    const m = program.model, seeded = new RandomWeights(program.params, (m.weights as { seed: number }).seed);
    const loaded = SafetensorsWeights.load(hf, program.params, { heads: m.heads, kvHeads: m.kvHeads });
    for (const p of program.params) expect(loaded.get(p.name), p.name).toEqual(seeded.get(p.name));
    expect(SafetensorsFile.with(hf, (f) => f.tensor('model.layers.0.self_attn.q_proj.weight')!.shape)).toEqual([64, 64]);
  }, 300_000);
});

