// `infer run` on the MoE example: --json carries stats.moe (tokens per layer and
// expert, imbalance), the plain output shows the routing table on stderr, and
// --no-fuse moe (the dense definition) generates the same tokens. CPU backend,
// in-process through main().
import { describe, expect, it } from 'vitest';
import { main } from '../../compiler/cli.ts';

const SPEC = 'examples/tiny-mixtral.infer';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await main(argv, { out: (t) => { out += t; }, err: (t) => { err += t; } });
  return { code, out, err };
}

describe('infer run with a mixture of experts', () => {
  it('--json reports stats.moe; without it a table goes to stderr; --no-fuse moe agrees', async () => {
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
    const plain = await cli(...args);
    expect(plain.out.trim()).toBe(r.tokens.join(' '));
    expect(plain.err).toMatch(/moe routing: tokens per expert \(8 tokens, top-2\)/);
    expect(plain.err).toMatch(new RegExp(`^ +0 +${moe.layers[0].counts.join(' +')} +${moe.layers[0].imbalance.toFixed(2)}$`, 'm'));
    const dense = await cli(...args, '--json', '--no-fuse', 'moe');
    expect(JSON.parse(dense.out).tokens).toEqual(r.tokens);
  });
});
