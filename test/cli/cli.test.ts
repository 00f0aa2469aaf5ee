// The `infer` CLI contract that scripts depend on: exit statuses, diagnostics on
// stderr, exactly one JSON object on stdout with --json, clear errors without
// stack traces. In-process through main() (CPU backend), plus bin/infer.mjs end
// to end for the re-exec and exit-status pass-through.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { cli } from './runCli.ts';

const SPEC = 'examples/tiny-llama.infer';

function badSpec(): string {
  const dir = mkdtempSync(join(tmpdir(), 'infer-cli-'));
  const file = join(dir, 'bad.infer');
  writeFileSync(file, readFileSync(SPEC, 'utf8').replace('kv_heads = 2', 'kv_heads = 3'));
  return file;
}

describe('infer check', () => {
  it('exits 0 on a clean spec and 1 with file:line:col and a caret on a bad one', async () => {
    expect((await cli('check', SPEC)).code).toBe(0);
    const file = badSpec();
    const r = await cli('check', file);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: error: .*kv_heads`, 'm'));
    expect(r.err).toMatch(/^\s*\^~*$/m);
    expect(r.out).toBe('');
  });

  it('reports a missing file, an unknown command and unknown options clearly', async () => {
    expect(await cli('check', 'nope.infer')).toMatchObject({ code: 1, err: 'infer: cannot read nope.infer: no such file\n' });
    expect((await cli('frobnicate', SPEC)).err).toMatch(/unknown command 'frobnicate'/);
    const r = await cli('run', SPEC, '--bogus');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/Unknown option '--bogus'/);
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('infer compile', () => {
  it('writes one .wgsl per kernel variant and a manifest', async () => {
    const out = mkdtempSync(join(tmpdir(), 'infer-wgsl-'));
    const r = await cli('compile', SPEC, '--target', 'wgsl', '--out', out);
    expect(r.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    const files = readdirSync(out).filter((f) => f.endsWith('.wgsl')).sort();
    const listed = manifest.kernels.flatMap((k: { variants: { file: string }[] }) => k.variants.map((v) => v.file)).sort();
    expect(files).toEqual(listed);
    expect(manifest.program.format).toBe('infer-program/4');
    // Activations share arenas (compiler/planMemory.ts); the summary line says how much that saves.
    expect(manifest.program.arenas.length).toBeGreaterThan(0);
    expect(r.err).toMatch(/activations: \d+ buffers \(\d+ in \d+ shared arenas\), \d+ bytes per token, [\d.]+ MiB at \d+ tokens per forward \([\d.]+ MiB unshared\)/);
    expect(readFileSync(join(out, files[0]), 'utf8')).toMatch(/@compute/);
  });

  it('compiles to CUDA, exits 2 for targets not built yet, 1 for unknown ones, and prints IR on request', async () => {
    const out = mkdtempSync(join(tmpdir(), 'infer-x-'));
    expect((await cli('compile', SPEC, '--target', 'ts', '--out', out, '--runtime-import', 'x"; evil')).err).toMatch(/runtime import 'x"; evil' is not a package or relative module path/);
    const cuda = mkdtempSync(join(tmpdir(), 'infer-cuda-'));
    expect(await cli('compile', SPEC, '--target', 'cuda', '--out', cuda)).toMatchObject({ code: 0, err: expect.stringMatching(/wrote \d+ \.cu files/) });
    expect(readdirSync(cuda).filter((f) => f.endsWith('.cu')).length).toBeGreaterThan(0);
    expect((await cli('compile', SPEC, '--target', 'spirv', '--out', out)).code).toBe(1);
    expect((await cli('compile', SPEC, '--target', 'wgsl')).err).toMatch(/--out DIR/);
    const ir = await cli('compile', SPEC, '--target', 'wgsl', '--out', out, '--print-ir', '--no-fuse', 'all');
    expect(ir.out).toMatch(/^graph TinyLlama/);
    expect(ir.out).not.toMatch(/fused_matmul/);
    expect(ir.out).toMatch(/^# activations: .*\n# arena0 \[T, \d+\]: t\d+/m);
    expect((await cli('compile', SPEC, '--target', 'wgsl', '--out', out, '--no-fuse', 'bogus')).err).toMatch(/unknown fusion 'bogus'/);
  });
});

describe('infer run (CPU backend)', () => {
  it('--json prints exactly one JSON object with tokens, top_logprobs and stats', async () => {
    const r = await cli('run', SPEC, '--backend', 'cpu', '--tokens', '1,2,3', '--max-tokens', '5', '--top-logprobs', '3', '--json', '--ignore-eos');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines.length).toBe(1);
    const j = JSON.parse(lines[0]);
    expect(j.tokens.length).toBe(5);
    expect(j.top_logprobs.length).toBe(5);
    expect(j.top_logprobs[0].length).toBe(3);
    expect(j.top_logprobs[0][0]).toEqual({ id: j.tokens[0], logprob: expect.any(Number) });
    for (const k of ['prefill_ms', 'decode_ms', 'tokens_per_s', 'dispatches_per_token', 'backend']) expect(j.stats).toHaveProperty(k);
    expect(j.stats.backend).toBe('cpu');
  });

  it('decodes several prompts as one batch: sequences in prompt order, stats.kv, --batch-file', async () => {
    const PAGED = 'examples/tiny-paged-int8.infer';
    const r = await cli('run', PAGED, '--backend', 'cpu', '--tokens', '1,2,3', '--tokens', '4', '--tokens', '1,2,3,4,5', '--max-tokens', '4', '--json', '--ignore-eos');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.sequences.length).toBe(3);
    for (const [i, prompt] of ['1,2,3', '4', '1,2,3,4,5'].entries()) {
      const one = JSON.parse((await cli('run', PAGED, '--backend', 'cpu', '--tokens', prompt, '--max-tokens', '4', '--json', '--ignore-eos')).out);
      expect(j.sequences[i].tokens).toEqual(one.tokens);
      expect(one.stats.kv).toMatchObject({ layout: 'paged', dtype: 'int8', page_size: 16, pages_used: 1 });
    }
    expect(j.stats).toMatchObject({ sequences: 3, generated_tokens: 12, max_batch: 3 });
    for (const k of ['page_size', 'pages_total', 'pages_used', 'bytes_used', 'bytes_reserved']) expect(j.stats.kv).toHaveProperty(k);
    expect(j.stats.kv.bytes_used).toBeLessThanOrEqual(j.stats.kv.bytes_reserved);
    const dir = mkdtempSync(join(tmpdir(), 'infer-batch-'));
    writeFileSync(join(dir, 'ok.txt'), '1,2,3\n# a comment\n\n4\n1,2,3,4,5\n');
    const f = JSON.parse((await cli('run', PAGED, '--backend', 'cpu', '--batch-file', join(dir, 'ok.txt'), '--max-tokens', '4', '--json', '--ignore-eos')).out);
    expect(f.sequences.map((q: { tokens: number[] }) => q.tokens)).toEqual(j.sequences.map((q: { tokens: number[] }) => q.tokens));
    writeFileSync(join(dir, 'bad.txt'), '1,2\n3,zz\n');
    const bad = await cli('run', PAGED, '--backend', 'cpu', '--batch-file', join(dir, 'bad.txt'));
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`${join(dir, 'bad.txt')}:2: 'zz' is not a token id`);
    expect((await cli('run', PAGED, '--backend', 'cpu', '--kv-pages', '0')).err).toMatch(/--kv-pages needs a decimal integer >= 1, got '0'/);
  });

  it('is reproducible for a seed and validates its flags', async () => {
    const run = (seed: string) => cli('run', SPEC, '--backend', 'cpu', '--max-tokens', '6', '--temperature', '1.2', '--top-p', '0.9', '--seed', seed, '--json', '--ignore-eos');
    const a = JSON.parse((await run('5')).out), b = JSON.parse((await run('5')).out);
    expect(a.tokens).toEqual(b.tokens);
    expect((await cli('run', SPEC, '--backend', 'cpu', '--tokens', '1,x')).err).toMatch(/--tokens: 'x' is not a token id/);
    expect((await cli('run', SPEC, '--backend', 'cpu', '--top-p', '1.5')).err).toMatch(/--top-p/);
    expect((await cli('run', SPEC, '--backend', 'metal')).err).toMatch(/unknown backend 'metal'/);
    const w = await cli('run', SPEC, '--backend', 'cpu', '--max-tokens', '1', '--weights', 'x.gguf', '--json');
    expect(w.code).toBe(0);
    expect(w.err).toMatch(/--weights x.gguf ignored: \w+ binds random\(seed = \d+\) weights \(write 'weights gguf' in the spec to load a file\)/);
  });
});

describe('bin/infer.mjs', () => {
  it('passes exit statuses 0, 1 and 2 through bin/infer.mjs', () => {
    const ok = spawnSync(process.execPath, ['bin/infer.mjs', 'run', SPEC, '--backend', 'cpu', '--max-tokens', '2', '--json'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).tokens.length).toBe(2);
    expect(spawnSync(process.execPath, ['bin/infer.mjs', 'check', badSpec()], { encoding: 'utf8' }).status).toBe(1);
    expect(spawnSync(process.execPath, ['bin/infer.mjs', 'plan', SPEC, '--batch', 'nope'], { encoding: 'utf8' }).status).toBe(2);
  }, 60_000);

  it('keeps stderr to what the run says: Dawn\'s start-up limit notices are dropped, the stats table and errors pass', () => {
    const r = spawnSync(process.execPath, ['bin/infer.mjs', 'run', SPEC, '--max-tokens', '2', '--verbose'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/artificially reduced/);
    expect(r.stderr).toMatch(/^device: .*\n/m);
    expect(r.stderr).toMatch(/^ +tokens_per_s +[\d.]+$/m);
    const bad = spawnSync(process.execPath, ['bin/infer.mjs', 'check', badSpec()], { encoding: 'utf8' });
    expect(bad.stderr).toMatch(/:\d+:\d+: error: /);
  }, 60_000);
});
