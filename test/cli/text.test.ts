// Text in, text out: --prompt / --prompt-file, tokenize / detokenize against runtime/tokenizer,
// the stream through a pipe (the bytes on stdout are the detokenised tokens), and the streaming
// decoder at every split point of byte-fallback characters. One random-weight llama (dim 64,
// 2 layers) around the real Llama 2 32k vocabulary (bench/fixtures/exampleModel.ts), CPU backend.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { main, type Io } from '../../cli/main.ts';
import { decodeText, loadTokenizer, textStreamer } from '../../cli/text.ts';
import { writeExampleModel, type ExampleModel } from '../../bench/fixtures/exampleModel.ts';
import type { Tokenizer } from '../../runtime/tokenizer/index.ts';

let model: ExampleModel, tok: Tokenizer, dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'infer-text-'));
  model = writeExampleModel(dir);
  tok = loadTokenizer(model.gguf).tokenizer;
}, 60_000);

async function cli(args: string[]): Promise<{ code: number; out: string; err: string; chunks: string[] }> {
  const chunks: string[] = [];
  let err = '';
  const io: Io = { out: (t) => { chunks.push(t); }, err: (t) => { err += t; } };
  const code = await main(args, io);
  return { code, out: chunks.join(''), err, chunks };
}

const run = (...a: string[]) => cli(['run', model.spec, '--weights', model.gguf, '--backend', 'cpu', ...a]);

describe('infer run with text', () => {
  it('--prompt --json: ids, and text that is their decoding', async () => {
    const r = await run('--prompt', 'Once upon a time', '--max-tokens', '12', '--json');
    expect(r.code, r.err).toBe(0);
    const o = JSON.parse(r.out) as { tokens: number[]; text: string; stop_reason: string };
    expect(o.tokens.length).toBe(12);
    expect(o.text).toBe(decodeText(tok, o.tokens));
    expect(o.stop_reason).toBe('max_tokens');
  }, 60_000);

  it('several prompts and a .json --prompt-file make one batch, each with its text', async () => {
    const file = join(dir, 'prompts.json');
    writeFileSync(file, JSON.stringify(['Héllo wörld', 'two\nlines', '日本語']));
    const r = await run('--prompt-file', file, '--max-tokens', '4', '--json');
    expect(r.code, r.err).toBe(0);
    const o = JSON.parse(r.out) as { sequences: { tokens: number[]; text: string }[] };
    expect(o.sequences.length).toBe(3);
    for (const q of o.sequences) expect(q.text).toBe(decodeText(tok, q.tokens));
    const byFlag = await run('--prompt', 'Héllo wörld', '--prompt', 'two\nlines', '--prompt', '日本語', '--max-tokens', '4', '--json');
    expect(JSON.parse(byFlag.out).sequences.map((q: { tokens: number[] }) => q.tokens)).toEqual(o.sequences.map((q) => q.tokens));
  }, 60_000);

  it('streams text per token: the chunks are whole characters and join to the decoded tokens', async () => {
    const args = ['--prompt', '日本', '--max-tokens', '24', '--temperature', '1', '--seed', '3'];
    const plain = await run(...args);
    const json = JSON.parse((await run(...args, '--json')).out) as { tokens: number[] };
    expect(plain.code, plain.err).toBe(0);
    expect(plain.out).toBe(decodeText(tok, json.tokens) + '\n');
    expect(plain.chunks.length).toBeGreaterThan(1);
    for (const c of plain.chunks) expect(c).not.toMatch(/\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  }, 60_000);

  it('a speculative run (prompt lookup) reports text too, and agrees with the plain run', async () => {
    const spec = await run('--prompt', 'la la la la', '--max-tokens', '8', '--ngram', '2', '--json');
    expect(spec.code, spec.err).toBe(0);
    const o = JSON.parse(spec.out) as { tokens: number[]; text: string };
    expect(o.text).toBe(decodeText(tok, o.tokens));
    expect(o.tokens).toEqual((JSON.parse((await run('--prompt', 'la la la la', '--max-tokens', '8', '--json')).out) as { tokens: number[] }).tokens);
  }, 60_000);

  it('a prompt for a model without a tokenizer is a clear error', async () => {
    const r = await cli(['run', 'examples/tiny-llama.infer', '--backend', 'cpu', '--prompt', 'hi']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/--prompt needs a tokenizer, and TinyLlama has none: its weights are random\(seed\) and no --weights file/);
    const both = await run('--prompt', 'hi', '--tokens', '1,2');
    expect(both.err).toMatch(/not both/);
  });

  it('through a pipe: the bytes on stdout are the detokenised tokens, valid UTF-8', async () => {
    const args = ['run', model.spec, '--weights', model.gguf, '--backend', 'cpu', '--prompt', 'Ünïcödé ✓', '--max-tokens', '16', '--temperature', '1', '--seed', '11'];
    const p = spawnSync(process.execPath, ['bin/infer.mjs', ...args], { env: { ...process.env, INFER_FROM_SOURCE: '1' } });
    expect(p.status, p.stderr.toString()).toBe(0);
    const json = JSON.parse((await cli([...args, '--json'])).out) as { tokens: number[] };
    expect(new TextDecoder('utf-8', { fatal: true }).decode(p.stdout)).toBe(decodeText(tok, json.tokens) + '\n');
  }, 60_000);
});

describe('the stream decoder over byte-fallback tokens', () => {
  it('at every split point, each write is whole characters and the writes join to decode()', () => {
    // Characters outside the 32k vocabulary become 2-4 byte tokens each.
    const rare = fc.constantFrom('𝄞', '🦙', 'ǅ', '€', '\u0800', '한', 'ß', 'a', ' ', '日', '\u{10FFFF}');
    fc.assert(fc.property(fc.array(rare, { minLength: 1, maxLength: 12 }).map((a) => a.join('')), (s) => {
      const ids = tok.encode(s);
      const writes: string[] = [];
      const st = textStreamer(tok, (t) => writes.push(t));
      for (const id of ids) st.push(id);
      st.end();
      for (const w of writes) expect(w).not.toMatch(/\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
      expect(writes.join('')).toBe(decodeText(tok, ids));
      expect(decodeText(tok, ids).trimStart()).toBe(s.trimStart());
    }));
    expect(tok.encode('🦙').filter((id) => /^<0x/.test(tok.tokenText(id))).length).toBe(4);
  });
});

describe('infer tokenize / detokenize', () => {
  const texts = ['Hello world', ' leading space', 'Ünïcödé 🦙 日本語', '<s>[INST] hi [/INST]', ''];

  it('--text: ids as runtime/tokenizer gives them, plain and --json; --special adds BOS and parses <s>', async () => {
    for (const t of texts.slice(0, 4)) {
      const plain = await cli(['tokenize', '--weights', model.gguf, '--text', t]);
      expect(plain.code, plain.err).toBe(0);
      expect(plain.out).toBe(tok.encode(t).join(' ') + '\n');
      expect(JSON.parse((await cli(['tokenize', '--weights', model.gguf, '--text', t, '--json'])).out)).toEqual({ ids: tok.encode(t) });
      const special = JSON.parse((await cli(['tokenize', '--weights', model.gguf, '--text', t, '--special', '--json'])).out) as { ids: number[] };
      expect(special.ids).toEqual(tok.encode(t, { addSpecial: true, parseSpecial: true }));
      expect(special.ids[0]).toBe(tok.bos);
    }
  });

  it('--text-file: one result per string, in order', async () => {
    const file = join(dir, 'texts.json');
    writeFileSync(file, JSON.stringify(texts));
    const r = await cli(['tokenize', '--weights', model.gguf, '--text-file', file, '--json']);
    expect(JSON.parse(r.out)).toEqual({ results: texts.map((t) => ({ ids: tok.encode(t) })) });
    const plain = await cli(['tokenize', '--weights', model.gguf, '--text-file', file]);
    expect(plain.out).toBe(texts.map((t) => tok.encode(t).join(' ') + '\n').join(''));
  });

  it('detokenize round-trips and renders control tokens only with --special', async () => {
    const ids = tok.encode('Ünïcödé 🦙 日本語', { addSpecial: true });
    const r = await cli(['detokenize', '--weights', model.gguf, '--ids', ids.join(','), '--json']);
    expect(JSON.parse(r.out)).toEqual({ text: tok.decode(ids) });
    // BOS renders as nothing; as in llama.cpp, the space prefix then stays (it is stripped from the first token only).
    expect(tok.decode(ids)).toBe(' Ünïcödé 🦙 日本語');
    expect((await cli(['detokenize', '--weights', model.gguf, '--ids', ids.join(','), '--special'])).out).toBe(tok.decode(ids, { special: true }) + '\n');
    const bad = await cli(['detokenize', '--weights', model.gguf, '--ids', '1,99999']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/not a token id in 0\.\.31999/);
  });

  it('a GGUF without tokenizer metadata says so', async () => {
    const { writeGguf, gv } = await import('../../runtime/weights/ggufWriter.ts');
    const f = join(dir, 'novocab.gguf');
    writeGguf(f, [['general.architecture', gv.str('llama')]], []);
    const none = await cli(['tokenize', '--weights', f, '--text', 'x']);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/novocab\.gguf carries no tokenizer \(no tokenizer\.ggml\.\* metadata\)/);
    const r = await cli(['tokenize', '--text', 'x']);
    expect(r.err).toMatch(/tokenize needs --weights FILE/);
  });
});

describe('infer tokenize against llama.cpp', () => {
  it('the CLI gives the ids node-llama-cpp gives for the same file (plain and --special)', async () => {
    const { llamaCpp } = await import('../agreement/harness.ts');
    const lm = await (await llamaCpp()).loadModel({ modelPath: model.gguf, gpuLayers: 0 });
    try {
      const texts = ['Hello world', 'Ünïcödé 🦙 日本語', '<s>[INST] hi [/INST] </s>', '  two  spaces\ttab\nline'];
      const file = join(dir, 'agree.json');
      writeFileSync(file, JSON.stringify(texts));
      const plain = JSON.parse((await cli(['tokenize', '--weights', model.gguf, '--text-file', file, '--json'])).out) as { results: { ids: number[] }[] };
      expect(plain.results.map((r) => r.ids)).toEqual(texts.map((t) => lm.tokenize(t, false).map(Number)));
      const special = JSON.parse((await cli(['tokenize', '--weights', model.gguf, '--text-file', file, '--special', '--json'])).out) as { results: { ids: number[] }[] };
      // --special adds BOS as llama-tokenize does; node-llama-cpp's tokenize leaves it out.
      expect(special.results.map((r) => r.ids)).toEqual(texts.map((t) => [tok.bos, ...lm.tokenize(t, true).map(Number)]));
    } finally {
      await lm.dispose();
    }
  }, 60_000);
});

describe('a safetensors checkpoint', () => {
  it("takes the tokenizer.json (and tokenizer_config.json) beside it", async () => {
    const { hfFiles } = await import('../../bench/fixtures/vocabGguf.ts');
    const { tokenizerFromHf } = await import('../../runtime/tokenizer/index.ts');
    const { mkdirSync } = await import('node:fs');
    const ck = join(dir, 'llama3-ck');
    mkdirSync(ck, { recursive: true });
    const hf = hfFiles('llama3');
    writeFileSync(join(ck, 'tokenizer.json'), JSON.stringify(hf.tokenizer));
    writeFileSync(join(ck, 'tokenizer_config.json'), JSON.stringify(hf.config));
    const ref = tokenizerFromHf(hf.tokenizer, hf.config);
    const loaded = loadTokenizer(join(ck, 'model.safetensors')).tokenizer;
    expect(loaded.encode('Hello 🦙 world')).toEqual(ref.encode('Hello 🦙 world'));
    expect(loaded.chatTemplate).toBe(hf.config.chat_template);
    const r = await cli(['tokenize', '--weights', join(ck, 'model.safetensors'), '--text', 'Hello', '--special', '--json']);
    expect(JSON.parse(r.out)).toEqual({ ids: ref.encode('Hello', { addSpecial: true, parseSpecial: true }) });
    expect(() => loadTokenizer(join(dir, 'nowhere', 'model.safetensors'))).toThrow(/no tokenizer\.json beside/);
  });
});
