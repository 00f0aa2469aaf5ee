// `infer run` with speculative decoding (CPU backend, in process): every
// proposer gives the plain run's greedy tokens and one JSON object with
// stats.spec; the spec's `speculative` section is the default and flags win;
// bad setups (vocabulary mismatch, two proposers, unknown draft, too many
// layers) are one clear message, with file:line:col when the spec is at fault.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './runCli.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';

const SPEC = 'examples/tiny-llama.infer';
const PAIR = 'examples/draft-pair.infer';

const run = (...a: string[]) => cli('run', '--backend', 'cpu', '--tokens', '5,6,7,5,6,7,5', '--max-tokens', '14', '--ignore-eos', '--json', ...a);

function tmpSpec(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'infer-spec-')), name);
  writeFileSync(file, text);
  return file;
}

describe('infer run: speculative decoding', () => {
  it('every proposer reproduces the plain greedy tokens and reports stats.spec in the one JSON object', async () => {
    const plain = JSON.parse((await run(SPEC)).out);
    for (const flags of [['--self-draft-layers', '1'], ['--ngram', '2', '--lookahead', '6'], ['--draft', PAIR, '--adaptive'], ['--self-draft-layers', '2']]) {
      const r = await run(SPEC, ...flags);
      expect(r.code, r.err).toBe(0);
      expect(r.out.trim().split('\n')).toHaveLength(1);
      const j = JSON.parse(r.out);
      expect(j.tokens).toEqual(plain.tokens);
      for (const k of ['proposer', 'lookahead', 'target_passes', 'proposed', 'accepted', 'acceptance_rate', 'tokens_per_pass', 'predicted_tokens_per_pass']) expect(j.stats.spec).toHaveProperty(k);
    }
    // The full model as its own draft accepts everything: K + 1 tokens per pass.
    // Top log-probabilities come from the verify rows: the same as plain decoding's.
    const lpPlain = JSON.parse((await run(SPEC, '--top-logprobs', '3')).out).top_logprobs;
    const lpSpec = JSON.parse((await run(SPEC, '--top-logprobs', '3', '--self-draft-layers', '1', '--lookahead', '5')).out).top_logprobs;
    expect(lpSpec.length).toBe(14);
    lpSpec.forEach((row: { id: number; logprob: number }[], i: number) => row.forEach((t, j) => {
      expect(t.id).toBe(lpPlain[i][j].id);
      expect(Math.abs(t.logprob - lpPlain[i][j].logprob)).toBeLessThan(1e-9);
    }));
    // 14 tokens: 1 from the prompt's pass, then 4 + 4 + 4 + 1 (the last pass has 1 token left to make).
    const full = JSON.parse((await run(SPEC, '--self-draft-layers', '2', '--lookahead', '3')).out).stats.spec;
    expect(full).toMatchObject({ acceptance_rate: 1, target_passes: 4, proposed: 9, accepted: 9, tokens_per_pass: 13 / 4 });
  });

  it("uses the spec's speculative section by default; flags override it; --no-speculative decodes plainly", async () => {
    const base = ['run', PAIR, '--backend', 'cpu', '--max-tokens', '8', '--json'];
    const def = JSON.parse((await cli(...base)).out);
    expect(def.stats.spec.proposer).toMatch(/^draft TinyDraft/);
    expect(def.stats.spec.lookahead).toBe(4);
    // The example's draft is the target's first layer: some of its tokens are accepted.
    expect(def.stats.spec.accepted).toBeGreaterThan(0);
    const plain = JSON.parse((await cli(...base, '--no-speculative')).out);
    expect(plain.stats.spec).toBeUndefined();
    expect(def.tokens).toEqual(plain.tokens);
    expect(JSON.parse((await cli(...base, '--ngram', '1')).out).stats.spec.proposer).toMatch(/prompt lookup/);
    // The speculative table under --verbose; by default one summary line with the acceptance rate.
    const table = await cli('run', PAIR, '--backend', 'cpu', '--max-tokens', '4', '--verbose');
    expect(table.err).toMatch(/speculative decoding:\n(.|\n)*acceptance_rate/);
    const short = await cli('run', PAIR, '--backend', 'cpu', '--max-tokens', '4');
    expect(short.err).toMatch(/^4 tokens in [\d.]+ s \([\d.]+ tok\/s, \d+% of drafts accepted\); stop: max_tokens/m);
    expect(short.err).not.toMatch(/acceptance_rate/);
  });

  it('a draft given by file reference in the spec resolves relative to it; a vocabulary mismatch names both, at file:line:col', async () => {
    const target = readFileSync(SPEC, 'utf8');
    const dir = mkdtempSync(join(tmpdir(), 'infer-spec-'));
    writeFileSync(join(dir, 'draft.infer'), target.replace('model TinyLlama', 'model Small').replace('layers = 2', 'layers = 1'));
    writeFileSync(join(dir, 'wide.infer'), target.replace('model TinyLlama', 'model Wide').replace('vocab = 256', 'vocab = 300'));
    const ok = join(dir, 'ok.infer');
    writeFileSync(ok, target.replace('weights random(seed = 7)', 'weights random(seed = 7)\n  speculative { draft = "draft.infer"; lookahead = 3 }'));
    const r = await cli('run', ok, '--backend', 'cpu', '--max-tokens', '6', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).stats.spec.proposer).toMatch(/draft Small/);
    const bad = join(dir, 'bad.infer');
    writeFileSync(bad, target.replace('weights random(seed = 7)', 'weights random(seed = 7)\n  speculative { draft = "wide.infer" }'));
    const e = await cli('run', bad, '--backend', 'cpu');
    expect(e.code).toBe(1);
    expect(e.err).toMatch(/bad\.infer:\d+:\d+: error: draft 'Wide' .* vocabulary of 300 tokens, but target 'TinyLlama' .* has 256/);
    expect(e.err).toMatch(/\^~+/);
    const chk = await cli('check', bad);
    expect(chk.code).toBe(1);
    expect(chk.err).toMatch(/bad\.infer:\d+:\d+: error: draft 'Wide'/);
    expect((await cli('check', ok)).code).toBe(0);
    const f = await cli('run', SPEC, '--backend', 'cpu', '--draft', join(dir, 'wide.infer'));
    expect(f.err).toMatch(/vocabulary of 300 tokens, but target 'TinyLlama' .* has 256/);
  });

  it('rejects contradictory or impossible setups with one clear line', async () => {
    const cases: [string[], RegExp][] = [
      [['--ngram', '2', '--self-draft-layers', '1'], /--ngram and --self-draft-layers each choose a proposer/],
      [['--self-draft-layers', '3'], /--self-draft-layers 3 exceeds the 2 layers/],
      [['--lookahead', '0', '--ngram', '1'], /--lookahead needs a decimal integer >= 1, got '0'/],
      [['--lookahead', '3'], /--lookahead and --adaptive need a proposer/],
      [['--draft', 'nope.infer'], /cannot read draft spec nope\.infer: no such file/],
      [['--draft-weights', 'x.gguf'], /--draft-weights needs a draft model/],
      [['--ngram', '2', '--no-speculative'], /--no-speculative contradicts --ngram/],
    ];
    for (const [flags, want] of cases) {
      const r = await cli('run', SPEC, '--backend', 'cpu', ...flags);
      expect(r.code, flags.join(' ')).toBe(1);
      expect(r.err, flags.join(' ')).toMatch(want);
      expect(r.err).not.toMatch(/\n\s+at /);
    }
  });

  it('infer check reports speculative-section mistakes at file:line:col', async () => {
    const text = readFileSync(SPEC, 'utf8');
    const cases: [string, RegExp][] = [
      ['speculative { draft = Nope }', /:(\d+):(\d+): error: no model 'Nope' in this file/],
      ['speculative { ngram = 2; self_draft_layers = 1 }', /error: 'self_draft_layers' and 'ngram' \(at \d+:\d+\) both choose a proposer/],
      ['speculative { self_draft_layers = 5 }', /error: self_draft_layers \(5\) exceeds the model's 2 layers/],
      ['speculative { lookahead = 2 }', /error: a speculative section needs a proposer/],
      ['speculative { ngram = 2; frobs = 1 }', /error: unknown speculative key 'frobs'/],
      ['speculative { draft = TinyLlama }', /error: a model cannot be its own draft/],
      ['speculative { ngram = "3" }', /error: ngram takes a number, not a quoted string/],
      ['speculative { ngram = 2; adaptive = maybe }', /error: adaptive must be true or false/],
    ];
    for (const [section, want] of cases) {
      const file = tmpSpec('s.infer', text.replace('weights random(seed = 7)', `weights random(seed = 7)\n  ${section}`));
      const r = await cli('check', file);
      expect(r.code, section).toBe(1);
      expect(r.err, section).toMatch(want);
    }
  });

  it('GGUF-bound target and draft: --draft-weights loads the draft, a self-draft shares the loaded target weights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-spec-gguf-'));
    const base: GgufLlama = { vocab: 288, dim: 64, layers: 3, heads: 4, kvHeads: 2, ffn: 96, type: 'f32', tied: false, seed: 31, ctx: 64 };
    const tg = join(dir, 't.gguf'), dg = join(dir, 'd.gguf'), ts = join(dir, 't.infer'), ds = join(dir, 'd.infer');
    writeLlamaGguf(tg, base);
    writeLlamaGguf(dg, { ...base, dim: 32, heads: 2, kvHeads: 1, layers: 1, seed: 5 });
    expect((await cli('import', tg, '-o', ts)).code).toBe(0);
    expect((await cli('import', dg, '-o', ds)).code).toBe(0);
    const go = (...a: string[]) => cli('run', ts, '--weights', tg, '--backend', 'cpu', '--tokens', '1,270,281,263', '--max-tokens', '12', '--ignore-eos', '--json', ...a);
    const plain = JSON.parse((await go()).out).tokens;
    const d = await go('--draft', ds, '--draft-weights', dg, '--lookahead', '3');
    expect(d.code, d.err).toBe(0);
    expect(JSON.parse(d.out).tokens).toEqual(plain);
    const self = JSON.parse((await go('--self-draft-layers', '3')).out);
    expect(self.tokens).toEqual(plain);
    expect(self.stats.spec.acceptance_rate).toBe(1); // all layers: the draft is the target, sharing its loaded weights
    expect((await go('--draft', ds)).err).toMatch(/binds GGUF weights .*--draft-weights FILE\.gguf/);
  });
});
