// CLI conventions: --help / -h on every command (stdout, exit 0), --version, "did you
// mean" for misspelt commands and flags, strict numbers (decimal token ids and seeds, a
// seed in the sampler's 32-bit range), parameter counts, a one-line default summary
// with every stat under --verbose, and hints that run.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './runCli.ts';
import { closest, editDistance, selfCommand } from '../../cli/args.ts';

const SPEC = 'examples/tiny-llama.infer';

describe('help and version', () => {
  it('--help and -h print usage on stdout and exit 0, for the CLI and every command', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = await cli(...args);
      expect(r, args.join(' ')).toMatchObject({ code: 0, err: '' });
      expect(r.out).toMatch(/^usage:\n {2}infer check SPEC\n/);
    }
    for (const cmd of ['check', 'compile', 'run', 'import']) {
      for (const h of ['--help', '-h']) {
        const r = await cli(cmd, h);
        expect(r, `${cmd} ${h}`).toMatchObject({ code: 0, err: '' });
        expect(r.out).toMatch(new RegExp(`^usage: infer ${cmd} `));
      }
    }
    expect((await cli('run', SPEC, '--help')).out).toMatch(/Exit status: 0 every sequence ended/);
    expect((await cli('help', 'compile')).out).toMatch(/^usage: infer compile SPEC --target/);
    expect((await cli()).code).toBe(1); // no command at all is a usage error
  });

  it('--version prints the package name and version', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    expect(pkg.name).toBe('infer-compiler');
    expect(pkg.bin).toEqual({ infer: 'bin/infer.mjs' });
    expect(await cli('--version')).toEqual({ code: 0, out: `infer-compiler ${pkg.version}\n`, err: '' });
  });
});

describe('did you mean', () => {
  it('suggests the closest command or flag', async () => {
    expect((await cli('rnu', SPEC)).err).toMatch(/^infer: unknown command 'rnu' \(did you mean 'run'\?\)/);
    expect((await cli('chek', SPEC)).err).toMatch(/did you mean 'check'/);
    const r = await cli('run', SPEC, '--max-tokns', '3');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/Unknown option '--max-tokns'.*\(did you mean '--max-tokens'\?\)/);
    expect((await cli('run', SPEC, '--temprature', '1')).err).toMatch(/did you mean '--temperature'/);
    expect((await cli('frobnicate', SPEC)).err).not.toMatch(/did you mean/);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('rnu', 'run')).toBe(1);
    expect(closest('xyzzy', ['run', 'check'])).toBeNull();
  });
});

describe('strict numbers', () => {
  const run = (...a: string[]) => cli('run', SPEC, '--backend', 'cpu', '--max-tokens', '2', '--json', ...a);
  it('token ids are decimal integers only', async () => {
    for (const bad of ['0x10,1', '1e1', '1.0', '+3', ' ', '-1', '256']) {
      const r = await run(`--tokens=${bad}`);
      expect(r.code, bad).toBe(1);
      expect(r.err, bad).toMatch(/--tokens: '.*' is not a token id in 0\.\.255 \(give decimal ids like 1,2,3\)/);
    }
    expect((await run('--tokens', '16,10')).code).toBe(0);
  });

  it('a seed must fit the sampler\'s 32-bit range; integers are decimal', async () => {
    for (const bad of ['4294967296', '1e30', '0x10', '1.5', '-1', '']) {
      const r = await run(`--seed=${bad}`, '--temperature', '1');
      expect(r.code, bad).toBe(1);
      expect(r.err, bad).toMatch(/--seed needs a decimal integer in 0\.\.4294967295/);
    }
    const a = JSON.parse((await run('--seed', '4294967295', '--temperature', '1', '--max-tokens', '8', '--ignore-eos')).out).tokens;
    const z = JSON.parse((await run('--seed', '0', '--temperature', '1', '--max-tokens', '8', '--ignore-eos')).out).tokens;
    expect(a).not.toEqual(z);
    expect((await run('--max-tokens', '0x2')).err).toMatch(/--max-tokens needs a decimal integer >= 0, got '0x2'/);
    expect((await run('--temperature', 'Infinity')).err).toMatch(/--temperature needs a number >= 0/);
    expect((await run('--temperature', '0.5')).code).toBe(0);
  });
});

describe('reports', () => {
  it('counts parameters; prints a one-line summary by default and every stat under --verbose', async () => {
    expect((await cli('check', 'examples/llama-20m.infer')).err).toMatch(/model \w+: 2\d\.\dM parameters in 57 tensors/);
    const r = await cli('run', SPEC, '--backend', 'cpu', '--max-tokens', '3', '--ignore-eos');
    expect(r.code).toBe(0);
    const lines = r.err.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^TinyLlama: [\d.]+K parameters in 21 tensors; backend cpu$/);
    expect(lines[1]).toMatch(/^3 tokens in [\d.]+ s \([\d.]+ tok\/s\); stop: max_tokens \(--verbose for all stats\)$/);
    const v = await cli('run', SPEC, '--backend', 'cpu', '--max-tokens', '3', '--ignore-eos', '--verbose');
    expect(v.out).toBe(r.out);
    for (const k of ['prefill_ms', 'tokens_per_s', 'dispatches_per_token', 'kv.pages_total']) expect(v.err).toMatch(new RegExp(`^ +${k.replace('.', '\\.')} +\\S+$`, 'm'));
  });

  it('hints name a command that runs', () => {
    const root = process.cwd();
    expect(selfCommand({ PATH: '' }, root)).toBe('npx infer');
    expect(selfCommand({ PATH: '' }, mkdtempSync(join(tmpdir(), 'infer-hint-')))).toBe('npx infer-compiler');
  });
});
