// One vocabulary against llama.cpp: every corpus string and a fixed-seed stream of
// random strings, tokenised with and without parseSpecial, must give the same ids
// as llama.cpp's tokenize and the same text as its detokenize; the Hugging Face
// loader must agree with the GGUF one; the streaming decoder must rebuild decode().
// Each test file calls this for one vocabulary and so loads llama.cpp's model once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import fc from 'fast-check';
import type { LlamaModel, Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenizerFromGguf, tokenizerFromHf, type Tokenizer } from '../../runtime/tokenizer/index.ts';
import { GgufFile } from '../../runtime/weights/gguf.ts';
import { llamaCpp } from '../agreement/harness.ts';
import { CORPUS, SEED, textArb } from '../../bench/fixtures/tokenizerCorpus.ts';
import { ggufTokenizerMeta, hfFiles, writeVocabGguf, type VocabName } from '../../bench/fixtures/vocabGguf.ts';

export function streamDecode(tok: Tokenizer, ids: readonly number[], special: boolean): string[] {
  const d = tok.createStreamDecoder({ special });
  const chunks = ids.map((id) => d.push(id));
  chunks.push(d.flush());
  return chunks;
}

export function describeAgreement(name: VocabName, randomRuns: number): void {
  describe(`${name} vocabulary against llama.cpp`, () => {
    let dir = '', model: LlamaModel, gguf: Tokenizer, hf: Tokenizer;
    let compared = 0;

    beforeAll(async () => {
      dir = mkdtempSync(`${tmpdir()}/infer-tok-`);
      const files = hfFiles(name);
      const path = `${dir}/${name}.gguf`;
      writeVocabGguf(path, ggufTokenizerMeta(name, files));
      gguf = GgufFile.with(path, (g) => tokenizerFromGguf(g.metadata));
      hf = tokenizerFromHf(files.tokenizer, files.config);
      model = await (await llamaCpp()).loadModel({ modelPath: path, gpuLayers: 0 });
    });
    afterAll(async () => {
      await model?.dispose();
      if (dir) rmSync(dir, { recursive: true, force: true });
      console.log(`${name}: ${compared} (string, parseSpecial) encodings compared with llama.cpp`);
    });

    /** Everything one string must satisfy; returns a failure description or ''. */
    const check = (s: string): string => {
      for (const special of [false, true]) {
        compared++;
        const ref = s === '' ? [] : model.tokenize(s, special).map(Number);
        const got = gguf.encode(s, { parseSpecial: special });
        if (JSON.stringify(got) !== JSON.stringify(ref)) return `encode(${JSON.stringify(s)}, parseSpecial ${special}): llama.cpp [${ref}], infer [${got}]`;
        const fromHf = hf.encode(s, { parseSpecial: special });
        if (JSON.stringify(fromHf) !== JSON.stringify(ref)) return `tokenizerFromHf encode(${JSON.stringify(s)}, ${special}): [${fromHf}] vs [${ref}]`;
        const refText = ref.length ? model.detokenize(ref as Token[], special) : '';
        const text = gguf.decode(ref, { special });
        if (text !== refText) return `decode([${ref}], special ${special}): llama.cpp ${JSON.stringify(refText)}, infer ${JSON.stringify(text)}`;
        if (hf.decode(ref, { special }) !== text) return `tokenizerFromHf decode([${ref}]) differs`;
        const whole = gguf.decode(ref, { special, cleanSpaces: false });
        const chunks = streamDecode(gguf, ref, special);
        if (chunks.join('') !== whole) return `stream decode of [${ref}] gives ${JSON.stringify(chunks.join(''))}, decode ${JSON.stringify(whole)}`;
        if (!whole.includes('\uFFFD') && chunks.some((c) => c.includes('\uFFFD'))) return `a stream chunk of [${ref}] holds U+FFFD`;
      }
      // Lossless: well-formed plain text (no special parsing) decodes back to itself without
      // space clean-up (a lone surrogate comes back as U+FFFD).
      // SentencePiece reads a literal U+2581 as a space.
      if (/[\uD800-\uDFFF]/.test(s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''))) return '';
      if (gguf.model === 'llama' && s.includes('\u2581')) return '';
      const back = gguf.decode(gguf.encode(s), { cleanSpaces: false });
      if (back !== s) return `round trip of ${JSON.stringify(s)} gives ${JSON.stringify(back)}`;
      return '';
    };

    it('agrees on the corpus (tokenize, detokenize, HF loader, streaming, round trip)', () => {
      const failures = CORPUS.map(check).filter((f) => f !== '');
      expect(failures.join('\n')).toBe('');
    });

    it(`agrees on ${randomRuns} random strings (fast-check seed ${SEED})`, () => {
      fc.assert(fc.property(textArb, (s) => { const f = check(s); if (f) throw new Error(f); }), { seed: SEED, numRuns: randomRuns });
    });

    it('decodes random id sequences as llama.cpp does, and streams them without splitting characters', () => {
      fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: gguf.vocabSize - 1 }), { minLength: 1, maxLength: 12 }), fc.boolean(), (ids, special) => {
        const ref = model.detokenize(ids as Token[], special);
        expect(gguf.decode(ids, { special })).toBe(ref);
        const whole = gguf.decode(ids, { special, cleanSpaces: false });
        const chunks = streamDecode(gguf, ids, special);
        expect(chunks.join('')).toBe(whole);
        if (!whole.includes('\uFFFD')) for (const c of chunks) expect(c).not.toContain('\uFFFD');
      }), { seed: SEED, numRuns: randomRuns });
    });

    it('has the special ids llama.cpp reports', () => {
      expect(gguf.bos ?? null).toBe(model.tokens.bos);
      expect(gguf.eos ?? null).toBe(model.tokens.eos);
      expect(gguf.eot ?? null).toBe(model.tokens.eot);
      for (const id of [gguf.bos, gguf.eos, gguf.eot]) if (id !== undefined) expect(gguf.isSpecial(id)).toBe(true);
      expect([hf.bos, hf.eos, hf.eot, hf.vocabSize]).toEqual([gguf.bos, gguf.eos, gguf.eot, gguf.vocabSize]);
      const withBos = gguf.encode('hi', { addSpecial: true });
      expect(withBos[0] === gguf.bos).toBe(gguf.addBos);
    });
  });
}
