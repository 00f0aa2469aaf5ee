// Encode throughput of infer's tokenizers against llama.cpp's tokenize (node-llama-cpp,
// CPU build) on the same text and the same GGUF vocabulary: one long document (the
// test corpus repeated to about 1 MB) in one call, and the corpus strings one call
// each. Every run also checks the two agree token for token. Run it with
// `npx tsx bench/tokenizer.ts` (not under --no-opt: there is no Dawn here, and the
// optimising compiler is what a page would run the tokenizer with).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { getLlama, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import { tokenizerFromGguf, type Tokenizer } from '../runtime/tokenizer/index.ts';
import { GgufFile } from '../runtime/weights/gguf.ts';
import { CORPUS } from './fixtures/tokenizerCorpus.ts';
import { ggufTokenizerMeta, hfFiles, writeVocabGguf, type VocabName } from './fixtures/vocabGguf.ts';
import { runBench, writeResults } from './report.ts';

interface Row { vocab: VocabName; input: string; impl: string; mbPerS: number; tokensPerS: number; tokens: number }

/** Best of `repeats` timings of f (ms). */
function best(repeats: number, f: () => void): number {
  let ms = Infinity;
  for (let r = 0; r < repeats; r++) { const t = performance.now(); f(); ms = Math.min(ms, performance.now() - t); }
  return ms;
}

function measure(vocab: VocabName, ours: Tokenizer, model: LlamaModel, input: string, texts: string[]): Row[] {
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  const impls: [string, (t: string) => number[]][] = [
    ['infer', (t) => ours.encode(t, { parseSpecial: true })],
    ['llama.cpp', (t) => (t === '' ? [] : model.tokenize(t, true).map(Number))],
  ];
  let reference = '';
  return impls.map(([impl, enc]) => {
    let tokens = 0;
    const all: number[][] = [];
    const ms = best(3, () => { all.length = 0; tokens = 0; for (const t of texts) { const ids = enc(t); tokens += ids.length; all.push(ids); } });
    const key = JSON.stringify(all);
    if (reference && key !== reference) throw new Error(`${vocab} ${input}: infer and llama.cpp tokenise differently`);
    reference = key;
    return { vocab, input, impl, mbPerS: bytes / 1e6 / (ms / 1e3), tokensPerS: tokens / (ms / 1e3), tokens };
  });
}

runBench('tokenizer', async () => {
  const dir = mkdtempSync(`${tmpdir()}/infer-tokbench-`);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
  const rows: Row[] = [];
  try {
    const doc = CORPUS.join('\n');
    const long = doc.repeat(Math.ceil(1e6 / Buffer.byteLength(doc)));
    const short = Array.from({ length: 20 }, () => CORPUS).flat();
    for (const vocab of ['llama2', 'llama3'] as const) {
      const path = `${dir}/${vocab}.gguf`;
      writeVocabGguf(path, ggufTokenizerMeta(vocab, hfFiles(vocab)));
      const ours = GgufFile.with(path, (g) => tokenizerFromGguf(g.metadata));
      const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
      rows.push(...measure(vocab, ours, model, '1 MB document', [long]), ...measure(vocab, ours, model, `${short.length} short strings`, short));
      await model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const md = ['# tokenizer: encode throughput, infer vs llama.cpp', '',
    'Same GGUF vocabulary, same text, parseSpecial on; best of 3; the token ids agree exactly.', '',
    '| vocabulary | input | tokenizer | MB/s | tokens/s | tokens |', '|---|---|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.vocab} | ${r.input} | ${r.impl} | ${r.mbPerS.toFixed(2)} | ${Math.round(r.tokensPerS)} | ${r.tokens} |`)].join('\n');
  writeResults('tokenizer', rows, md);
});
