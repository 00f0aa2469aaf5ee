// K-quant GGUF files (q4_K_M: q4_K with q6_K for the output and some attn_v / ffn_down; q5_K)
// dequantised to f32 by the generated CUDA runner (weights_convert.h, the TypeScript
// decoders' roundings) into the f32 Program, against the CPU engine's `--f32-weights` run of
// the same file: greedy tokens identical. Blocks of 256 weights need K a multiple of 256.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { importGguf } from '../../cli/importSpec.ts';
import { GgufFile } from '../../runtime/weights/gguf.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';
import { cli } from '../cli/runCli.ts';
import { build, runJson } from './runnerHarness.ts';

const SHAPE: GgufLlama = { vocab: 300, dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 256, type: 'q4_K_M', tied: false, seed: 71, ctx: 32 };
const ARGS = ['--tokens', '1,2,3', '--tokens', '7', '--max-tokens', '10', '--ignore-eos'];
const tmp = mkdtempSync(join(tmpdir(), 'infer-runner-kquant-'));
const dir = join(tmp, 'runner'), spec = join(tmp, 'm.infer');

beforeAll(async () => {
  writeLlamaGguf(join(tmp, 'q4_K_M.gguf'), SHAPE);
  writeLlamaGguf(join(tmp, 'q5_K.gguf'), { ...SHAPE, type: 'q5_K' });
  writeFileSync(spec, importGguf(join(tmp, 'q4_K_M.gguf')));
  const c = await cli('compile', spec, '--target', 'cuda', '--out', dir);
  expect(c.code, c.err).toBe(0);
  build(dir, '--emu');
}, 600_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

for (const file of ['q4_K_M.gguf', 'q5_K.gguf']) {
  it(`${file} dequantised into the f32 Program equals the CPU engine with --f32-weights`, async () => {
    const types = GgufFile.with(join(tmp, file), (g) => new Set(g.tensors.map((t) => t.type.name)));
    expect([...types].sort()).toEqual(file === 'q5_K.gguf' ? ['f32', 'q5_K'] : ['f32', 'q4_K', 'q6_K']);
    const r = await cli('run', spec, '--backend', 'cpu', '--json', '--no-speculative', '--weights', join(tmp, file), '--f32-weights', ...ARGS);
    expect(r.code, r.err).toBe(0);
    const want = (JSON.parse(r.out) as { sequences: { tokens: number[] }[] }).sequences.map((s) => s.tokens);
    const got = (runJson(dir, ['--weights', join(tmp, file), ...ARGS]).sequences as { tokens: number[] }[]).map((s) => s.tokens);
    expect(got).toEqual(want);
  });
}
