// `infer run` never loses what it generated: when the KV pool fills, a prompt can never
// fit, or the context ends, the tokens so far are printed with their stop reason, other
// sequences carry on, --json is still exactly one object, and the exit status says
// whether every sequence ended normally (0) or some was cut short (3).
import { describe, expect, it } from 'vitest';
import { cli } from './runCli.ts';

const PAGED = 'examples/tiny-paged-int8.infer'; // 16-token pages, max_context 512

const run = (...a: string[]) => cli('run', PAGED, '--backend', 'cpu', '--ignore-eos', ...a);
const json = async (...a: string[]) => { const r = await run(...a, '--json'); expect(r.out.trim().split('\n')).toHaveLength(1); return { ...r, j: JSON.parse(r.out) }; };

describe('infer run: partial outputs and stop reasons', () => {
  it('one prompt on a one-page pool prints its 16 tokens, says kv_exhausted and exits 3', async () => {
    const full = await json('--max-tokens', '40');
    expect(full.code).toBe(0);
    expect(full.j.stop_reason).toBe('max_tokens');
    const r = await run('--kv-pages', '1', '--max-tokens', '40');
    expect(r.code).toBe(3);
    expect(r.out).toBe(full.j.tokens.slice(0, 16).join(' ') + '\n');
    expect(r.err).toMatch(/^infer: kv_exhausted: stopped after 16 tokens: KV page pool exhausted/m);
    const j = await json('--kv-pages', '1', '--max-tokens', '40');
    expect(j.code).toBe(3);
    expect(j.j).toMatchObject({ tokens: full.j.tokens.slice(0, 16), stop_reason: 'kv_exhausted', stats: { stop_reason: 'kv_exhausted', generated_tokens: 16 } });
    expect(j.j.message).toMatch(/KV page pool exhausted/);
  });

  it('three prompts on a one-page pool: partial outputs, each marked', async () => {
    const r = await json('--kv-pages', '1', '--max-tokens', '40', '--tokens', '1', '--tokens', '2', '--tokens', '3');
    expect(r.code).toBe(3);
    expect(r.j.sequences).toHaveLength(3);
    for (const q of r.j.sequences) expect(['kv_exhausted', 'max_tokens']).toContain(q.stop_reason);
    expect(r.j.sequences.some((q: { stop_reason: string }) => q.stop_reason === 'kv_exhausted')).toBe(true);
    expect(r.j.sequences.reduce((a: number, q: { tokens: number[] }) => a + q.tokens.length, 0)).toBeGreaterThan(0);
  });

  it('a prompt larger than the whole pool stops alone; the others print what they print alone', async () => {
    const big = Array.from({ length: 40 }, (_, i) => String(i + 1)).join(',');
    const r = await run('--kv-pages', '2', '--max-tokens', '8', '--tokens', '1,2', '--tokens', big, '--tokens', '3');
    expect(r.code).toBe(3);
    const lines = r.out.split('\n');
    for (const [i, p] of [[0, '1,2'], [2, '3']] as const) {
      const one = await json('--max-tokens', '8', '--tokens', p);
      expect(lines[i]).toBe(`[${i}] ${one.j.tokens.join(' ')}`);
    }
    expect(lines[1]).toBe('[1] ');
    expect(r.err).toMatch(/^infer: \[1\] prompt_too_large: the prompt's 40 tokens do not fit the KV pool/m);
    expect(r.err).toMatch(/^3 sequences, 16 tokens in [\d.]+ s .*stop: 2 max_tokens, 1 prompt_too_large/m);
    const j = await json('--kv-pages', '2', '--max-tokens', '8', '--tokens', '1,2', '--tokens', big, '--tokens', '3');
    expect(j.j.sequences.map((q: { stop_reason: string }) => q.stop_reason)).toEqual(['max_tokens', 'prompt_too_large', 'max_tokens']);
    expect(j.j.sequences[1]).toMatchObject({ tokens: [], message: expect.stringMatching(/do not fit the KV pool/) });
  });

  it('the end of the context is a stop reason too (exit 3), after every token that fit', async () => {
    const prompt = Array.from({ length: 510 }, () => '1').join(',');
    const r = await json('--max-tokens', '10', '--tokens', prompt);
    expect(r.code).toBe(3);
    expect(r.j).toMatchObject({ stop_reason: 'max_context', tokens: expect.any(Array) });
    expect(r.j.tokens).toHaveLength(3);
  });
});
