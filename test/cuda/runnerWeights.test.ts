// The generated CUDA runner's --weights (backends/cuda/runner/weights_*.h) on the CPU
// emulation, against the CPU engine (`infer run --backend cpu --weights`, the float64
// interpreter over runtime/weights' readers) on the same files: greedy tokens identical for
// a GGUF f32 file, the Hugging Face safetensors twin (one F32 file; BF16 shards in a
// directory), a q8_0 / q4_0 file kept compact on the device (embedding q8_0 blocks, matrices
// q4_0: the program/quant.ts repacking) and the same file dequantised into an f32 Program.
// Bad files (truncated at every header field, bytes flipped, wrong shapes and types, broken
// safetensors JSON) exit 1 with a message naming the byte offset, never a crash. Two builds.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cString } from '../../backends/cuda/runner/weightTables.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { GgufFile } from '../../runtime/weights/gguf.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';
import { cli } from '../cli/runCli.ts';
import { writeLlamaSafetensors, writeShardedLlamaSafetensors } from '../fixtures/hfLlama.ts';
import { build, runJson, runRunner } from './runnerHarness.ts';

const SHAPE: GgufLlama = { vocab: 300, dim: 64, layers: 1, heads: 4, kvHeads: 2, ffn: 96, type: 'f32', tied: false, seed: 61, ctx: 32 };
const GREEDY = ['--tokens', '1,2,3', '--max-tokens', '16', '--ignore-eos'];
const BATCH = ['--tokens', '5,6,7', '--tokens', '9', '--tokens', '11,12,13,14,15', '--max-tokens', '6', '--ignore-eos'];

const tmp = mkdtempSync(join(tmpdir(), 'infer-runner-weights-'));
const path = (name: string) => join(tmp, name);
/** f32 Program (compiled without --weights) and the compact one (compiled with the q4_0 file's types). */
let f32Dir = '', quantDir = '';

async function cpuTokens(spec: string, args: readonly string[]): Promise<unknown> {
  const r = await cli('run', spec, '--backend', 'cpu', '--json', '--no-speculative', ...args);
  if (r.code !== 0) throw new Error(`infer run --backend cpu exited ${r.code}: ${r.err}`);
  const o = JSON.parse(r.out) as { tokens?: number[]; sequences?: { tokens: number[] }[] };
  return o.sequences ? o.sequences.map((s) => s.tokens) : o.tokens;
}
function runnerTokens(dir: string, args: readonly string[]): unknown {
  const o = runJson(dir, args) as { tokens?: number[]; sequences?: { tokens: number[] }[] };
  return o.sequences ? o.sequences.map((s) => s.tokens) : o.tokens;
}

beforeAll(async () => {
  writeLlamaGguf(path('f32.gguf'), SHAPE);
  writeLlamaGguf(path('quant.gguf'), { ...SHAPE, type: 'q4_0', embdType: 'q8_0' });
  writeLlamaSafetensors(path('model.safetensors'), SHAPE, 'F32');
  mkdirSync(path('shards'));
  writeShardedLlamaSafetensors(path('shards'), SHAPE, 2, 'BF16');
  writeFileSync(path('f32.infer'), importGguf(path('f32.gguf')));
  writeFileSync(path('quant.infer'), importGguf(path('quant.gguf')));
  f32Dir = path('f32-runner');
  quantDir = path('quant-runner');
  const a = await cli('compile', path('f32.infer'), '--target', 'cuda', '--out', f32Dir);
  expect(a.code, a.err).toBe(0);
  const b = await cli('compile', path('quant.infer'), '--target', 'cuda', '--out', quantDir, '--weights', path('quant.gguf'));
  expect(b.code, b.err).toBe(0);
  expect(readFileSync(join(quantDir, 'host/model.h'), 'utf8')).toMatch(/"q4_0"/);
  build(f32Dir, '--emu');
  build(quantDir, '--emu');
}, 600_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('runner --weights equals the CPU engine on the same file (greedy)', () => {
  it('GGUF f32: one prompt and a batch of three', async () => {
    expect(runnerTokens(f32Dir, ['--weights', path('f32.gguf'), ...GREEDY])).toEqual(await cpuTokens(path('f32.infer'), ['--weights', path('f32.gguf'), ...GREEDY]));
    expect(runnerTokens(f32Dir, ['--weights', path('f32.gguf'), ...BATCH])).toEqual(await cpuTokens(path('f32.infer'), ['--weights', path('f32.gguf'), ...BATCH]));
  });

  it('safetensors: one F32 file, and BF16 shards through their directory (q/k rows reordered for RoPE)', async () => {
    const want = await cpuTokens(path('f32.infer'), ['--weights', path('model.safetensors'), ...GREEDY]);
    expect(want).toEqual(await cpuTokens(path('f32.infer'), ['--weights', path('f32.gguf'), ...GREEDY]));
    expect(runnerTokens(f32Dir, ['--weights', path('model.safetensors'), ...GREEDY])).toEqual(want);
    expect(runnerTokens(f32Dir, ['--weights', path('shards'), ...GREEDY])).toEqual(await cpuTokens(path('f32.infer'), ['--weights', path('shards'), ...GREEDY]));
  });

  it('GGUF q8_0 embedding + q4_0 matrices kept as blocks on the device', async () => {
    const want = await cpuTokens(path('quant.infer'), ['--weights', path('quant.gguf'), ...GREEDY]);
    expect(runnerTokens(quantDir, ['--weights', path('quant.gguf'), ...GREEDY])).toEqual(want);
    expect(runnerTokens(quantDir, ['--weights', path('quant.gguf'), ...BATCH])).toEqual(await cpuTokens(path('quant.infer'), ['--weights', path('quant.gguf'), ...BATCH]));
  });

  it('the same q8_0 / q4_0 file dequantised into the f32 Program equals --f32-weights', async () => {
    expect(runnerTokens(f32Dir, ['--weights', path('quant.gguf'), ...GREEDY])).toEqual(await cpuTokens(path('quant.infer'), ['--weights', path('quant.gguf'), '--f32-weights', ...GREEDY]));
  });
});

/** The runner's failure: exit status 1 (not a signal) and its one-line message. */
function failure(dir: string, file: string): string {
  const r = runRunner(dir, ['--weights', file, '--max-tokens', '1']);
  expect(r.status, r.stderr).toBe(1);
  expect(r.stderr).toMatch(/^runner: /);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  return r.stderr;
}

describe('bad weight files: a message with the byte offset, never a crash', () => {
  it('a missing file, no --weights, a file of neither format', () => {
    expect(failure(f32Dir, path('nope.gguf'))).toMatch(/nope\.gguf: byte 0: cannot open: no such file/);
    const none = runRunner(f32Dir, ['--max-tokens', '1']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/binds a weight file .* --weights FILE\.gguf/);
    writeFileSync(path('junk.bin'), 'hello, this is not a model file at all');
    expect(failure(f32Dir, path('junk.bin'))).toMatch(/byte 0: not a GGUF file .* and not a safetensors file/);
  });

  it('GGUF truncated anywhere in its header or data', () => {
    const bytes = readFileSync(path('f32.gguf'));
    const header = bytes.indexOf(Buffer.from('token_embd.weight')) + 40;
    for (const cut of [0, 3, 7, 15, 23, 40, 200, header, header + 300, bytes.length - 1]) {
      writeFileSync(path('cut.gguf'), bytes.subarray(0, cut));
      expect(failure(f32Dir, path('cut.gguf')), `cut at ${cut}`).toMatch(/cut\.gguf: byte \d+: .*(truncated|past the end|wrong magic|more than)/);
    }
  });

  it('GGUF with flipped header bytes: loads or fails with a byte offset (fuzz)', () => {
    const bytes = readFileSync(path('f32.gguf'));
    const dataStart = GgufFile.with(path('f32.gguf'), (g) => g.dataOffset);
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: dataStart - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (flips) => {
      const b = Buffer.from(bytes);
      for (const [at, x] of flips) b[at] ^= x;
      writeFileSync(path('flip.gguf'), b);
      const r = runRunner(f32Dir, ['--weights', path('flip.gguf'), '--max-tokens', '1']);
      expect(r.status === 0 || r.status === 1, `${JSON.stringify(flips)}: status ${r.status} ${r.stderr}`).toBe(true);
      if (r.status === 1) expect(r.stderr).toMatch(/^runner: .*flip\.gguf: byte \d+: /);
    }), { numRuns: 40 });
  });

  it('a tensor of the wrong shape, a type the Program cannot take', () => {
    writeLlamaGguf(path('wide.gguf'), { ...SHAPE, ffn: 128 });
    expect(failure(f32Dir, path('wide.gguf'))).toMatch(/byte \d+: tensor blk\.0\.ffn_gate\.weight: has dims \[64, 128\] .*param buffer \d+ is \[64, 96\]/);
    expect(failure(quantDir, path('f32.gguf'))).toMatch(/byte \d+: tensor token_embd\.weight: type f32 cannot fill a param the Program keeps as q8_0/);
  });

  it('safetensors with flipped header bytes: loads or fails with a byte offset (fuzz)', () => {
    const bytes = readFileSync(path('model.safetensors'));
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: headerEnd - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), (flips) => {
      const b = Buffer.from(bytes);
      for (const [at, x] of flips) b[at] ^= x;
      writeFileSync(path('flip.safetensors'), b);
      const r = runRunner(f32Dir, ['--weights', path('flip.safetensors'), '--max-tokens', '1']);
      expect(r.status === 0 || r.status === 1, `${JSON.stringify(flips)}: status ${r.status} ${r.stderr}`).toBe(true);
      if (r.status === 1) expect(r.stderr).toMatch(/^runner: .*flip\.safetensors: byte \d+: /);
    }), { numRuns: 30 });
  });

  it('safetensors: truncated, broken JSON, a missing tensor', () => {
    const bytes = readFileSync(path('model.safetensors'));
    for (const cut of [5, 12, 300, bytes.length - 10]) {
      writeFileSync(path('cut.safetensors'), bytes.subarray(0, cut));
      expect(failure(f32Dir, path('cut.safetensors')), `cut at ${cut}`).toMatch(/cut\.safetensors: byte \d+: .*(truncated|past the end|bad header JSON)/);
    }
    const broken = Buffer.from(bytes);
    broken.write('[', 8);
    writeFileSync(path('broken.safetensors'), broken);
    expect(failure(f32Dir, path('broken.safetensors'))).toMatch(/byte \d+: bad header JSON/);
    const renamed = Buffer.from(bytes.toString('latin1').replace('model.norm.weight', 'model.norx.weight'), 'latin1');
    writeFileSync(path('renamed.safetensors'), renamed);
    expect(failure(f32Dir, path('renamed.safetensors'))).toMatch(/byte 8: tensor model\.norm\.weight: missing/);
  });
});

it('names reach C++ only as literals of [A-Za-z0-9_.] and three-digit octal escapes', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
    const lit = cString(s);
    expect(lit).toMatch(/^"(?:[A-Za-z0-9_.]|\\[0-7]{3})*"$/);
    const bytes = [...lit.slice(1, -1).matchAll(/\\([0-7]{3})|(.)/g)].map((m) => (m[1] ? parseInt(m[1], 8) : m[2].charCodeAt(0)));
    expect(new TextDecoder().decode(Uint8Array.from(bytes))).toBe(new TextDecoder().decode(new TextEncoder().encode(s)));
  }));
});
