// Ctrl-C: the first SIGINT stops generation, prints what was generated and exits 130;
// end to end through bin/infer.mjs on the CPU backend (tokens stream to stdout as they
// come for one prompt, so the test interrupts after the first of them).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function interrupted(args: string[], when: 'stdout' | 'stderr'): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, ['bin/infer.mjs', 'run', 'examples/tiny-llama.infer', '--backend', 'cpu', '--ignore-eos', '--max-tokens', '500', ...args]);
    let out = '', err = '', sent = false;
    const poke = () => { if (!sent) { sent = true; c.kill('SIGINT'); } };
    c.stdout.on('data', (d) => { out += d; if (when === 'stdout') poke(); });
    c.stderr.on('data', (d) => { err += d; if (when === 'stderr') poke(); });
    c.on('close', (code) => done({ code, out, err }));
  });
}

describe('Ctrl-C', () => {
  it('one prompt: prints the tokens so far, says cancelled and exits 130', async () => {
    const r = await interrupted([], 'stdout');
    expect(r.code, r.err).toBe(130);
    const tokens = r.out.trim().split(' ');
    expect(tokens.length).toBeGreaterThanOrEqual(1);
    expect(tokens.length).toBeLessThan(500);
    expect(r.out).toMatch(/^\d+( \d+)*\n$/);
    expect(r.err).toMatch(new RegExp(`^infer: cancelled: cancelled after ${tokens.length} tokens?$`, 'm'));
    expect(r.err).toMatch(/stop: cancelled/);
  }, 60_000);

  it('a batch: every sequence\'s line is printed, marked cancelled', async () => {
    const r = await interrupted(['--tokens', '1,2', '--tokens', '3'], 'stderr');
    expect(r.code, r.err).toBe(130);
    expect(r.out).toMatch(/^\[0\]( \d+)*\n\[1\]( \d+)*\n$/);
    expect(r.err).toMatch(/^infer: \[0\] cancelled: /m);
    expect(r.err).toMatch(/stop: 2 cancelled/);
  }, 60_000);
});
