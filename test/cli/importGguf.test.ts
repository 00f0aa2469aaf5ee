// `infer import` then `infer run --weights FILE.gguf --json` from the command line
// gives llama.cpp's greedy tokens for the same file: in-process through main() on
// the CPU engine, and end to end through bin/infer.mjs on the default (WebGPU)
// backend. Plus the CLI's GGUF errors and the load progress on stderr.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { cli } from './runCli.ts';
import { progressBar } from '../../cli/import.ts';
import { gv, writeGguf } from '../../runtime/weights/ggufWriter.ts';
import { runLlamaCpp } from '../agreement/harness.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-cli-gguf-'));
const model: GgufLlama = { vocab: 288, dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', tied: false, seed: 31, ctx: 96 };
const gguf = join(dir, 'model.gguf'), spec = join(dir, 'model.infer');
const prompt = [1, 270, 281, 263];
let llamaGreedy: number[];

beforeAll(async () => {
  writeLlamaGguf(gguf, model);
  llamaGreedy = (await runLlamaCpp(gguf, model.vocab, prompt, 64)).greedy;
}, 60_000);

describe('infer import + run --weights', () => {
  it('gives llama.cpp\'s 64 greedy tokens (in process, CPU engine)', async () => {
    const imp = await cli('import', gguf, '-o', spec);
    expect(imp).toMatchObject({ code: 0, out: '' });
    expect(imp.err).toMatch(/wrote .*model\.infer/);
    const r = await cli('run', spec, '--weights', gguf, '--backend', 'cpu', '--json', '--tokens', prompt.join(','), '--max-tokens', '64', '--ignore-eos');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe(''); // --json: no progress bar, nothing but the JSON object on stdout
    expect(JSON.parse(r.out).tokens).toEqual(llamaGreedy);
  });

  // More architectures through the same two commands: MQA with a tied output, and a
  // Mixtral-style MoE (import writes the routing and the expert body).
  const more: [string, GgufLlama][] = [
    ['MQA, tied output', { vocab: 300, dim: 48, layers: 2, heads: 6, kvHeads: 1, ffn: 96, type: 'f32', tied: true, seed: 32, ctx: 96 }],
    ['MoE 4 experts top-2, GQA', { vocab: 290, dim: 32, layers: 2, heads: 4, kvHeads: 2, ffn: 32, experts: 4, expertsUsed: 2, type: 'f32', tied: false, seed: 33, ctx: 96 }],
  ];
  for (const [label, m] of more) {
    it(`gives llama.cpp's 64 greedy tokens: ${label}`, async () => {
      const file = join(dir, `m${m.seed}.gguf`), s = join(dir, `m${m.seed}.infer`);
      writeLlamaGguf(file, m);
      const want = (await runLlamaCpp(file, m.vocab, prompt, 64)).greedy;
      expect((await cli('import', file, '-o', s)).code).toBe(0);
      const r = await cli('run', s, '--weights', file, '--backend', 'cpu', '--json', '--tokens', prompt.join(','), '--max-tokens', '64', '--ignore-eos');
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out).tokens).toEqual(want);
    }, 120_000);
  }

  it('gives the same tokens end to end through bin/infer.mjs on WebGPU', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, ['bin/infer.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });
    const imp = run('import', gguf);
    expect(imp.status, imp.stderr).toBe(0);
    expect(imp.stdout).toBe(readFileSync(spec, 'utf8')); // without -o the spec goes to stdout
    const r = run('run', spec, '--weights', gguf, '--json', '--tokens', prompt.join(','), '--max-tokens', '64', '--ignore-eos');
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tokens).toEqual(llamaGreedy);
  });

  it('shows load progress on stderr without --json', async () => {
    const r = await cli('run', spec, '--weights', gguf, '--backend', 'cpu', '--tokens', '1', '--max-tokens', '2');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/loaded 21 tensors \([\d.]+ MiB\) from .*model\.gguf in [\d.]+ s/);
    let bar = '';
    const show = progressBar('m.gguf', { out: () => {}, err: (t) => { bar += t; } }, true);
    show({ tensor: 'a', index: 1, count: 2, bytes: 50, totalBytes: 100 });
    show({ tensor: 'b', index: 2, count: 2, bytes: 100, totalBytes: 100 });
    expect(bar).toMatch(/^\rloading m\.gguf \[#{15}\.{15}\]  50% .*\rloading m\.gguf \[#{30}\] 100% .*\nloaded 2 tensors/s);
  });

  it('reports GGUF problems clearly: no --weights, a bad file, an unsupported architecture', async () => {
    const noWeights = await cli('run', spec, '--backend', 'cpu');
    expect(noWeights).toMatchObject({ code: 1, out: '' });
    expect(noWeights.err).toMatch(/^infer: \w+ binds GGUF weights \('weights gguf'\): give the model file with --weights FILE\.gguf \(or a Hugging Face llama FILE\.safetensors\)\n$/);
    const missing = await cli('run', spec, '--weights', join(dir, 'nope.gguf'), '--backend', 'cpu');
    expect(missing.err).toMatch(/^infer: .*nope\.gguf: byte 0: cannot open: no such file\n$/);
    const other = join(dir, 'gpt2.gguf');
    writeGguf(other, [['general.architecture', gv.str('gpt2')]], []);
    const r = await cli('import', other);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^infer: .*gpt2\.gguf: architecture "gpt2" is not supported; infer imports 'llama'/);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect((await cli('import', gguf, '--max-context', 'x')).err).toMatch(/--max-context needs a decimal integer >= 1, got 'x'/);
  });
});
