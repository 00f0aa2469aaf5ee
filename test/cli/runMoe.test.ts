// `infer run` on the MoE example: --json carries stats.moe (tokens per layer and
// expert, imbalance), the plain output shows the routing table on stderr, and
// --no-fuse moe (the dense definition) generates the same tokens. CPU backend,
// in-process through main().
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { cli } from './runCli.ts';

const SPEC = 'examples/tiny-mixtral.infer';

describe('infer run with a mixture of experts', () => {
  it('--json reports stats.moe; --verbose prints a table on stderr; --no-fuse moe agrees', async () => {
    const args = ['run', SPEC, '--backend', 'cpu', '--tokens', '1,2,3', '--max-tokens', '6', '--ignore-eos'];
    const j = await cli(...args, '--json');
    expect(j.code).toBe(0);
    const r = JSON.parse(j.out) as { tokens: number[]; stats: { moe: { tokens: number; layers: { layer: number; experts: number; top_k: number; counts: number[]; imbalance: number }[] } } };
    const moe = r.stats.moe;
    expect(moe.tokens).toBe(3 + 5);
    expect(moe.layers.map((l) => l.layer)).toEqual([0, 1]);
    for (const l of moe.layers) {
      expect(l).toMatchObject({ experts: 8, top_k: 2 });
      expect(l.counts.reduce((a, b) => a + b, 0)).toBe(moe.tokens * 2);
      expect(l.imbalance).toBeCloseTo(Math.max(...l.counts) / (moe.tokens * 2 / 8), 12);
    }
    expect((await cli(...args)).err).not.toMatch(/moe routing/);
    const plain = await cli(...args, '--verbose');
    expect(plain.out.trim()).toBe(r.tokens.join(' '));
    expect(plain.err).toMatch(/moe routing: tokens per expert \(8 tokens, top-2\)/);
    expect(plain.err).toMatch(new RegExp(`^ +0 +${moe.layers[0].counts.join(' +')} +${moe.layers[0].imbalance.toFixed(2)}$`, 'm'));
    const dense = await cli(...args, '--json', '--no-fuse', 'moe');
    expect(JSON.parse(dense.out).tokens).toEqual(r.tokens);
  });

  it('several prompts as one batch, on WebGPU: each sequence decodes what it decodes alone; stats.moe counts every token', async () => {
    const prompts = ['1,2,3', '7,8', '4,5,6,9,10'];
    const flags = ['--max-tokens', '5', '--ignore-eos', '--json'];
    const batch = await cli('run', SPEC, ...prompts.flatMap((p) => ['--tokens', p]), ...flags);
    expect(batch.code, batch.err).toBe(0);
    const r = JSON.parse(batch.out) as { sequences: { tokens: number[] }[]; stats: { moe: { tokens: number; layers: { counts: number[] }[] } } };
    for (let i = 0; i < prompts.length; i++) {
      const alone = await cli('run', SPEC, '--backend', 'cpu', '--tokens', prompts[i], ...flags);
      expect(r.sequences[i].tokens, `prompt ${prompts[i]}`).toEqual(JSON.parse(alone.out).tokens);
    }
    // Prompt tokens plus every decoded token but each sequence's last (never fed back).
    const fed = prompts.reduce((a, p) => a + p.split(',').length, 0) + prompts.length * 4;
    expect(r.stats.moe.tokens).toBe(fed);
    for (const l of r.stats.moe.layers) expect(l.counts.reduce((a, b) => a + b, 0)).toBe(fed * 2);
  });
});
