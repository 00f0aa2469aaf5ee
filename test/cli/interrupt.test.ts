// Ctrl-C: the first SIGINT stops generation, prints what was generated and exits 130;
// end to end through bin/infer.mjs on the CPU backend (tokens stream to stdout as they
// come for one prompt, so the test interrupts after the first of them).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * Runs `infer run` and sends SIGINT once `when` first has output. `group`: in its own
 * process group, signalled as a whole, as a terminal's Ctrl-C signals every process of
 * the foreground job (the WebGPU path runs the CLI in a child process). `times`: how many SIGINTs.
 */
function interrupted(args: string[], when: 'stdout' | 'stderr', o: { group?: boolean; times?: number; gapMs?: number } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, ['bin/infer.mjs', 'run', 'examples/tiny-llama.infer', '--ignore-eos', '--max-tokens', '500', ...args], { detached: o.group ?? false });
    let out = '', err = '', sent = false;
    const poke = () => {
      if (sent) return;
      sent = true;
      const send = () => { try { if (o.group) process.kill(-c.pid!, 'SIGINT'); else c.kill('SIGINT'); } catch { /* already gone */ } };
      for (let i = 0; i < (o.times ?? 1); i++) setTimeout(send, i * (o.gapMs ?? 0));
    };
    c.stdout.on('data', (d) => { out += d; if (when === 'stdout') poke(); });
    c.stderr.on('data', (d) => { err += d; if (when === 'stderr') poke(); });
    c.on('close', (code) => done({ code, out, err }));
  });
}

describe('Ctrl-C', () => {
  it('one prompt: prints the tokens so far, says cancelled and exits 130', async () => {
    const r = await interrupted(['--backend', 'cpu'], 'stdout');
    expect(r.code, r.err).toBe(130);
    const tokens = r.out.trim().split(' ');
    expect(tokens.length).toBeGreaterThanOrEqual(1);
    expect(tokens.length).toBeLessThan(500);
    expect(r.out).toMatch(/^\d+( \d+)*\n$/);
    expect(r.err).toMatch(new RegExp(`^infer: cancelled: cancelled after ${tokens.length} tokens?$`, 'm'));
    expect(r.err).toMatch(/stop: cancelled/);
  }, 60_000);

  it('a batch: every sequence\'s line is printed, marked cancelled', async () => {
    const r = await interrupted(['--backend', 'cpu', '--tokens', '1,2', '--tokens', '3'], 'stderr');
    expect(r.code, r.err).toBe(130);
    expect(r.out).toMatch(/^\[0\]( \d+)*\n\[1\]( \d+)*\n$/);
    expect(r.err).toMatch(/^infer: \[0\] cancelled: /m);
    expect(r.err).toMatch(/stop: 2 cancelled/);
  }, 60_000);

  it('on WebGPU (the CLI in a child process) a terminal\'s Ctrl-C, delivered to the group and forwarded by the parent, still reports', async () => {
    const r = await interrupted([], 'stdout', { group: true });
    expect(r.code, r.err).toBe(130);
    expect(r.err).toMatch(/^infer: cancelled: cancelled after \d+ tokens?$/m);
    expect(r.out).toMatch(/^\d+( \d+)*\n$/);
  }, 60_000);

  it('two SIGINTs milliseconds apart (one Ctrl-C seen from the terminal and from a parent) count as one: it still reports', async () => {
    const r = await interrupted(['--backend', 'cpu'], 'stdout', { times: 2 });
    expect(r.code, r.err).toBe(130);
    expect(r.err).toMatch(/^infer: cancelled: cancelled after \d+ tokens?$/m);
  }, 60_000);

  it('a second Ctrl-C later exits, still 130', async () => {
    const r = await interrupted(['--backend', 'cpu'], 'stdout', { times: 2, gapMs: 400 });
    expect(r.code).toBe(130);
  }, 60_000);
});
